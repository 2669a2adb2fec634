"""Tests for supcon.corruptions.arrays: reading the CIFAR-10-C layout and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from supcon.corruptions import load_corrupted_arrays


def _write_c_layout(root, name="fog", n=3, shape=(32, 32, 3)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5 * n, *shape), dtype=np.uint8)
    labels = np.tile(np.arange(n, dtype=np.uint8), 5)
    np.save(root / f"{name}.npy", images)
    np.save(root / "labels.npy", labels)
    return images, labels


@pytest.mark.parametrize("severity", [1, 2, 5])
def test_load_corrupted_arrays(tmp_path, severity):
    images, labels = _write_c_layout(tmp_path)
    x, y = load_corrupted_arrays(tmp_path, "fog", severity)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (3,) and y.dtype == torch.int64
    part = slice(3 * (severity - 1), 3 * severity)
    assert torch.equal(x, torch.from_numpy(images[part]).permute(0, 3, 1, 2))
    assert torch.equal(y, torch.from_numpy(labels[part].astype(np.int64)))
    x2, _ = load_corrupted_arrays(str(tmp_path), "fog", severity)  # str root works too
    assert torch.equal(x, x2)


def test_load_corrupted_arrays_missing_files(tmp_path):
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    _write_c_layout(tmp_path)
    (tmp_path / "labels.npy").unlink()
    with pytest.raises(ValueError, match="labels.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)


def test_load_corrupted_arrays_bad_contents(tmp_path):
    _write_c_layout(tmp_path)
    np.save(tmp_path / "fog.npy", np.zeros((7, 32, 32, 3), dtype=np.uint8))  # not 5 severities
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32), dtype=np.uint8))  # no channel axis
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="fog.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    np.save(tmp_path / "fog.npy", np.zeros((15, 32, 32, 3), dtype=np.uint8))
    np.save(tmp_path / "labels.npy", np.zeros(10, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels.npy"):
        load_corrupted_arrays(tmp_path, "fog", 1)
    with pytest.raises(ValueError, match="severity"):
        load_corrupted_arrays(tmp_path, "fog", 6)
    with pytest.raises(ValueError, match="name"):
        load_corrupted_arrays(tmp_path, "haze", 1)
