"""Every recipe in configs/ loads, and trains one step on a CPU on a tiny folder of the layout it names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from supcon.config import load_config
from supcon.train.methods import pretrain, train_ce, train_linear

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _jpeg_folder(root: Path, classes: int = 2, per_class: int = 2, side: int = 32) -> Path:
    """CIFAR's layout: train/<class>/*.jpg and test/<class>/*.jpg, RGB."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for k in range(classes):
            folder = root / split / f"c{k}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def test_there_are_recipes_for_both_resnets_on_both_cifars():
    names = {p.stem for p in CONFIGS}
    assert {"cifar10_supcon_r18", "cifar10_supcon_r50", "cifar100_supcon_r18", "cifar100_supcon_r50"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_recipe_loads_and_trains_one_step(path, tmp_path):
    recipe = load_config(path)
    small = {"epochs": 1, "ce_epochs": 1, "linear_epochs": 1, "batch_size": 4, "linear_batch_size": 4,
             "device": "cpu", "amp": "off", "plots": False, "progress": False, "threads": 1, "queue_size": 0}
    if recipe.dataset.startswith("folder:"):
        small["dataset"] = f"folder:{_jpeg_folder(tmp_path / 'data')}"
    elif not recipe.dataset.startswith("digits"):
        pytest.skip(f"{path.name} reads {recipe.dataset}, not a folder or a built-in set")
    cfg = load_config(path, small)
    assert cfg.arch == recipe.arch and cfg.temperature == recipe.temperature  # the recipe itself is kept
    if cfg.dataset.startswith("digits"):
        cfg = load_config(path, {**small, "label_fraction": 0.01, "batch_size": 8})
    metrics = pretrain(cfg, tmp_path / "pre")
    assert np.isfinite(metrics["loss"])
    probe = train_linear(cfg, tmp_path / "pre" / "checkpoint.pt", tmp_path / "lin")
    assert 0 <= probe["test_acc"] <= 100
    if recipe.arch in ("resnet18", "small") or "cifar10_cpu" in path.stem:
        assert np.isfinite(train_ce(cfg, tmp_path / "ce")["loss"])
