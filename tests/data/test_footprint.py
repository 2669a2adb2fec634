"""Tests for supcon.data.footprint: an image size too large for memory is refused before any allocation."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_files import noise, save_image
from supcon.config import config_from_dict
from supcon.data import DatasetError, load_dataset, load_splits
from supcon.data import folder as folder_module
from supcon.data import footprint
from supcon.data.footprint import check_fits_in_memory, image_bytes, physical_memory

GIB = 1 << 30


def test_the_estimate_counts_uint8_images_and_float32_views():
    assert image_bytes(10, 3, 32) == 10 * 3 * 32 * 32
    assert image_bytes(10, 3, 32, batch_views=8) == 10 * 3 * 32 * 32 + 8 * 3 * 32 * 32 * 4
    assert physical_memory() is None or physical_memory() > 0


def test_the_refusal_gives_the_estimate_and_the_memory(monkeypatch):
    monkeypatch.setattr(footprint, "physical_memory", lambda: 2 * GIB)
    check_fits_in_memory(1000, 3, 256, "data")  # 187.5 MiB: fits
    with pytest.raises(DatasetError) as info:
        check_fits_in_memory(50_000, 3, 256, "cifar10:/data", batch_views=512)
    message = str(info.value)
    assert message.startswith("cifar10:/data at image_size 256 needs about 9.5 GiB of memory")
    assert "50000 images x 3 x 256 x 256 bytes (uint8) + a batch of 512 float32 views" in message
    assert "more than the 2.0 GiB this machine has: pass a smaller --image-size" in message
    monkeypatch.setattr(footprint, "physical_memory", lambda: None)
    check_fits_in_memory(50_000, 3, 256, "unknown memory: nothing is checked")


def test_a_huge_image_size_is_refused_before_the_resize(tiny_npz):
    """64 images at 10^6 x 10^6 pixels are 58 TiB: refused by the estimate, not by a failed allocation."""
    with pytest.raises(DatasetError, match=r"at image_size 1000000 needs about 58\.2 TiB .*--image-size"):
        load_dataset(f"npz:{tiny_npz}", "train", image_size=10**6)


def test_a_folder_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    for k in range(2):
        for i in range(3):
            save_image(tmp_path / f"c{k}" / f"{i}.png", noise(8, 8, 10 * k + i))
    decoded = []
    monkeypatch.setattr(folder_module.ImageDecoder, "decode", lambda *a, **k: decoded.append(1))
    monkeypatch.setattr(footprint, "physical_memory", lambda: 6 * 3 * 64 * 64 - 1)
    with pytest.raises(DatasetError, match=r"folder .* at image_size 64 needs about 72\.0 KiB .*6 images x 3 x 64"):
        load_dataset(f"folder:{tmp_path}", "train", image_size=64)
    assert decoded == []


def test_the_splits_and_a_batch_of_views_must_fit_together(tiny_npz, monkeypatch):
    """The tiny npz (96 images 1 x 8 x 8 = 6 KiB) fits; with a batch of 16 x 2 float views (8 KiB) it does not."""
    cfg = config_from_dict({"dataset": f"npz:{tiny_npz}", "batch_size": 16, "views": 2})
    dataset_bytes = 96 * 64
    monkeypatch.setattr(footprint, "physical_memory", lambda: dataset_bytes + 32 * 64 * 4)
    assert len(load_splits(cfg).train) == 64
    monkeypatch.setattr(footprint, "physical_memory", lambda: dataset_bytes + 32 * 64 * 4 - 1)
    with pytest.raises(DatasetError, match=r"96 images x 1 x 8 x 8 bytes \(uint8\) \+ a batch of 32 float32 views"):
        load_splits(cfg)
    # a batch larger than the training split is shrunk to it by training, and so in the estimate
    big_batch = config_from_dict({"dataset": f"npz:{tiny_npz}", "batch_size": 4096, "views": 2})
    monkeypatch.setattr(footprint, "physical_memory", lambda: dataset_bytes + 128 * 64 * 4)
    assert len(load_splits(big_batch).test) == 32
    assert np.isfinite(load_splits(big_batch).mean).all()
