"""Helpers for tests that train: a tiny learnable dataset and tiny settings (imported by conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Tiny dataset shape: classes, train / test images per class, image side.
TINY_CLASSES = 4
TINY_TRAIN_PER_CLASS = 16
TINY_TEST_PER_CLASS = 8
TINY_SIDE = 8


def tiny_arrays(seed: int = 0, classes: int = TINY_CLASSES, train_per_class: int = TINY_TRAIN_PER_CLASS,
                test_per_class: int = TINY_TEST_PER_CLASS, side: int = TINY_SIDE) -> dict[str, np.ndarray]:
    """Arrays of a learnable toy dataset: class k is a bright k-th horizontal band plus noise.

    Returns ``images`` (N, side, side) uint8, ``labels`` (N,) int64 and the ``_test`` pair.
    """
    rng = np.random.default_rng(seed)

    def make(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(classes), per_class)
        images = rng.integers(0, 60, size=(len(labels), side, side))
        band = side // classes
        for i, k in enumerate(labels):
            images[i, k * band:(k + 1) * band, :] += 180
        order = rng.permutation(len(labels))
        return images[order].clip(0, 255).astype(np.uint8), labels[order].astype(np.int64)

    images, labels = make(train_per_class)
    images_test, labels_test = make(test_per_class)
    return {"images": images, "labels": labels, "images_test": images_test, "labels_test": labels_test}


def write_tiny_npz(path: Path, **overrides: Any) -> Path:
    """Writes the toy dataset (with ``overrides`` replacing arrays) to ``path`` and returns it."""
    arrays = tiny_arrays()
    arrays.update(overrides)
    np.savez(path, **arrays)
    return path


#: Config values that make every command take a few steps on a CPU.
TINY_SETTINGS: dict[str, Any] = {
    "arch": "small",
    "epochs": 1,
    "batch_size": 16,
    "lr": 0.05,
    "lr_scaling": "none",
    "warmup_epochs": 0,
    "feat_dim": 16,
    "flip": False,
    "crop_min": 0.5,
    "linear_epochs": 1,
    "linear_batch_size": 16,
    "linear_lr": 0.1,
    "knn_k": 5,
    "tsne_points": 32,
    "device": "cpu",
    "plots": False,
    "progress": False,
}


def flags_for(values: dict[str, Any]) -> list[str]:
    """CLI flags for config values: ``{"batch_size": 16, "plots": False}`` -> ``--batch-size 16 --no-plots``."""
    out: list[str] = []
    for key, value in values.items():
        flag = key.replace("_", "-")
        if isinstance(value, bool):
            out.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            out.extend([f"--{flag}", str(value)])
    return out


def fail_writability_probe(monkeypatch: Any, code: int) -> None:
    """Makes every run folder look unwritable (``code``: errno.EROFS, ENOSPC...) to the check
    :func:`supcon.runfiles.claim_run_dir` makes before a run, as a read-only or full disk would
    (tests run as root, where a read-only chmod stops nothing)."""
    import os

    from supcon import runfiles

    real = runfiles.tempfile.mkstemp

    def mkstemp(*args: Any, prefix: str | None = None, **kwargs: Any) -> Any:
        if prefix == runfiles._PROBE_PREFIX:
            raise OSError(code, os.strerror(code))
        return real(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(runfiles.tempfile, "mkstemp", mkstemp)
