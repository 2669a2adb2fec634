"""Helpers for the transfer tests: a tiny RGB image folder and a gray npz of another size and class count,
and tiny encoders pretrained on them (imported by tests/data, tests/train/methods and tests/cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tiny_runs import TINY_SETTINGS
from supcon.config import config_from_dict
from supcon.train import methods as engine

#: The pretraining folder: 3 classes of 16x16 RGB images (class k is bright in channel k).
FOLDER_CLASSES, FOLDER_SIDE = 3, 16
#: The gray npz: 5 classes of 12x12 images (class k is a bright k-th band).
NPZ_CLASSES, NPZ_SIDE = 5, 12


def write_rgb_folder(root: Path, train_per_class: int = 10, test_per_class: int = 4, seed: int = 0) -> Path:
    """``root/{train,test}/c<k>/<i>.png``: 16x16 RGB, learnable (channel k of class k is bright)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for k in range(FOLDER_CLASSES):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 60, (FOLDER_SIDE, FOLDER_SIDE, 3))
                pixels[:, :, k] += 180
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def write_gray_npz(path: Path, train_per_class: int = 8, test_per_class: int = 4, seed: int = 1) -> Path:
    """A 12x12 gray npz of 5 classes (class k: a bright k-th horizontal band), with a test split."""
    rng = np.random.default_rng(seed)

    def make(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(NPZ_CLASSES), per_class)
        images = rng.integers(0, 60, (len(labels), NPZ_SIDE, NPZ_SIDE))
        band = NPZ_SIDE // NPZ_CLASSES
        for i, k in enumerate(labels):
            images[i, k * band:(k + 1) * band] += 180
        return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)

    images, labels = make(train_per_class)
    images_test, labels_test = make(test_per_class)
    np.savez(path, images=images, labels=labels, images_test=images_test, labels_test=labels_test)
    return path


def tiny_cfg(dataset: str, **overrides: Any):
    """A :class:`supcon.config.Config` of the tiny settings on ``dataset``."""
    return config_from_dict({**TINY_SETTINGS, "dataset": dataset, **overrides})


def pretrain_tiny(method: str, dataset: str, out: Path) -> Path:
    """A tiny ``method`` (supcon, simclr or ce) encoder trained on ``dataset`` into ``out``; its checkpoint."""
    cfg = tiny_cfg(dataset, method="supcon" if method == "ce" else method)
    if method == "ce":
        engine.train_ce(cfg, out)
    else:
        engine.pretrain(cfg, out)
    return out / "checkpoint.pt"
