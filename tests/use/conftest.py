"""Fixtures of the tests of :mod:`supcon.use`: tiny checkpoints of every kind, trained once per session
on the tiny npz (4 classes of 8x8 gray images), and a tiny folder of PNG images of other sizes and modes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from supcon.config import config_from_dict
from supcon.train.methods import pretrain, train_ce, train_linear
from tiny_runs import TINY_SETTINGS, tiny_arrays


@pytest.fixture(scope="session")
def trained(tiny_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"pretrain", "linear", "finetune", "ce"}`` -> checkpoint.pt trained a few steps on the tiny npz."""
    root = tmp_path_factory.mktemp("use_runs")
    cfg = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})
    pretrain(cfg, root / "pretrain")
    source = root / "pretrain" / "checkpoint.pt"
    train_linear(cfg, source, root / "linear")
    train_linear(dataclasses.replace(cfg, finetune=True), source, root / "finetune")
    train_ce(cfg, root / "ce")
    return {kind: root / kind / "checkpoint.pt" for kind in ("pretrain", "linear", "finetune", "ce")}


@pytest.fixture(scope="session")
def png_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``DIR/<class>/<k>.png``: the first 5 tiny test images per class, as RGB PNGs of 12x16 (not square,
    not the trained size), for folder datasets and loose files."""
    root = tmp_path_factory.mktemp("pngs")
    arrays = tiny_arrays()
    for k in range(4):
        (root / f"class{k}").mkdir()
        for j, index in enumerate(np.flatnonzero(arrays["labels_test"] == k)[:5]):
            gray = Image.fromarray(arrays["images_test"][index]).resize((16, 12), Image.Resampling.NEAREST)
            gray.convert("RGB").save(root / f"class{k}" / f"{j}.png")
    return root
