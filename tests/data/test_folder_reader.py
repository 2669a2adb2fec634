"""Tests for supcon.data.folder: image class folders written here."""

from __future__ import annotations

import functools
import logging
import re

import numpy as np
import pytest
import torch
from PIL import Image

from dataset_files import corrupt_png, noise, rgb, save_image, truncated_jpeg, write_image_tree
from supcon.data import DatasetError, load_dataset
from supcon.data import decode as decode_module
from supcon.data import folder as folder_module
from supcon.data.cache import CACHE_DIR_ENV


def test_folder_mixed_sizes_resized_to_image_size(tmp_path):
    save_image(tmp_path / "cat" / "a.png", rgb(10, 10, (255, 0, 0)))
    save_image(tmp_path / "cat" / "b.jpg", rgb(12, 20, (0, 255, 0)), "JPEG")
    save_image(tmp_path / "cat" / "c.png", rgb(6, 6, (0, 0, 255)))
    save_image(tmp_path / "dog" / "a.png", rgb(10, 10, (10, 20, 30)))
    save_image(tmp_path / "dog" / "b.jpeg", rgb(8, 8, (200, 200, 200)), "JPEG")
    save_image(tmp_path / "dog" / "c.png", rgb(16, 8, (1, 2, 3)))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\x00\x01junk")
    train = load_dataset(f"folder:{tmp_path}", "train", image_size=5, test_fraction=0.3)
    test = load_dataset(f"folder:{tmp_path}", "test", image_size=5, test_fraction=0.3)
    assert train.images.shape == (4, 3, 5, 5) and test.images.shape == (2, 3, 5, 5)
    assert train.classes == ["cat", "dog"] and train.name == tmp_path.name
    assert test.labels.sort().values.tolist() == [0, 1]
    # Flat colours survive the resize exactly (PNG is lossless).
    every = torch.cat([train.images, test.images])
    for colour in ((255, 0, 0), (0, 0, 255), (1, 2, 3)):
        flat = torch.tensor(colour, dtype=torch.uint8)[:, None, None].expand(3, 5, 5)
        assert any(torch.equal(img, flat) for img in every)


def test_folder_without_image_size_uses_most_common_side_and_centre_crops(tmp_path, caplog):
    tall = np.zeros((8, 4, 3), dtype=np.uint8)
    tall[2:6] = 255  # centre 4x4 of an 8x4 image is white, top and bottom rows black
    for k in range(3):
        save_image(tmp_path / "a" / f"{k}.png", rgb(4, 4, (k, k, k)))
        save_image(tmp_path / "b" / f"{k}.png", rgb(4, 4, (9, 9, 9)))
    save_image(tmp_path / "b" / "tall.png", tall)
    save_image(tmp_path / "a" / "big.png", rgb(12, 12, (50, 60, 70)))
    with caplog.at_level(logging.WARNING, logger="supcon.data.folder"):
        train = load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.25)
    test = load_dataset(f"folder:{tmp_path}", "test", test_fraction=0.25)
    assert any("centre-cropping to 4x4" in r.getMessage() for r in caplog.records)
    every = torch.cat([train.images, test.images])
    assert every.shape == (8, 3, 4, 4)
    assert any(bool((img == 255).all()) for img in every)  # the tall image, cropped to its white centre
    # The big one, downscaled.
    assert any(bool((img[0] == 50).all() and (img[2] == 70).all()) for img in every)


def test_folder_all_grayscale_gives_one_channel(tmp_path):
    for cls in ("x", "y"):
        for k in range(3):
            save_image(tmp_path / cls / f"{k}.png", np.full((6, 6), 40 * k, dtype=np.uint8))
    train = load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.34)
    assert train.channels == 1 and train.images.shape[2:] == (6, 6)
    save_image(tmp_path / "y" / "colour.png", rgb(6, 6, (1, 2, 3)))
    assert load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.34).channels == 3


def test_folder_train_test_subfolders(tmp_path):
    for k in range(2):
        save_image(tmp_path / "train" / "ant" / f"{k}.png", rgb(4, 4, (k, 0, 0)))
        save_image(tmp_path / "train" / "bee" / f"{k}.png", rgb(4, 4, (0, k, 0)))
        save_image(tmp_path / "train" / "cow" / f"{k}.png", rgb(4, 4, (0, 0, k)))
    save_image(tmp_path / "val" / "bee" / "0.png", rgb(4, 4, (0, 7, 0)))
    train = load_dataset(f"folder:{tmp_path}", "train")
    test = load_dataset(f"folder:{tmp_path}", "test")
    assert len(train) == 6 and train.classes == ["ant", "bee", "cow"]
    assert len(test) == 1 and test.classes == train.classes and test.labels.tolist() == [1]
    assert int(test.images[0, 1, 0, 0]) == 7
    save_image(tmp_path / "val" / "dog" / "0.png", rgb(4, 4, (1, 1, 1)))
    with pytest.raises(DatasetError, match=r"\['dog'\].*no counterpart"):
        load_dataset(f"folder:{tmp_path}", "test")


def test_folder_corrupt_image_names_the_file(tmp_path):
    for k in range(3):
        save_image(tmp_path / "a" / f"{k}.png", rgb(4, 4, (k, k, k)))
        save_image(tmp_path / "b" / f"{k}.png", rgb(4, 4, (k, k, k)))
    broken = tmp_path / "b" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken\.png"):
        load_dataset(f"folder:{tmp_path}", "train")


def test_folder_empty_class_and_empty_root(tmp_path):
    with pytest.raises(DatasetError, match="has no class folders"):
        load_dataset(f"folder:{tmp_path}", "train")
    save_image(tmp_path / "a" / "0.png", rgb(4, 4, (1, 1, 1)))
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "readme.txt").write_text("no images here")
    with pytest.raises(DatasetError, match=r"class folder .*empty_class holds no image files"):
        load_dataset(f"folder:{tmp_path}", "train")


def _decoder_with(monkeypatch, **kwargs):
    """Make the folder reader decode with ``ImageDecoder(**kwargs)``, pooled even for tiny folders."""
    monkeypatch.setattr(decode_module, "_PARALLEL_MIN_FILES", 0)
    monkeypatch.setattr(decode_module, "_MIN_CHUNK", 1)
    monkeypatch.setattr(folder_module, "ImageDecoder", functools.partial(decode_module.ImageDecoder, **kwargs))


@pytest.mark.parametrize("backend", ["process", "thread"])
@pytest.mark.parametrize("image_size", [None, 6])
def test_folder_parallel_decode_equals_serial(tmp_path, monkeypatch, backend, image_size):
    write_image_tree(tmp_path / "data")
    save_image(tmp_path / "data" / "bee" / "gray.png", noise(9, 7, 1, channels=1))
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    loads = {}
    for workers in (1, 3):
        _decoder_with(monkeypatch, workers=workers, backend=backend)
        loads[workers] = [
            load_dataset(f"folder:{tmp_path / 'data'}", split, image_size=image_size, test_fraction=0.25)
            for split in ("train", "test")
        ]
    for serial, parallel in zip(loads[1], loads[3]):
        assert torch.equal(serial.images, parallel.images) and torch.equal(serial.labels, parallel.labels)
        assert serial.classes == parallel.classes == ["ant", "bee", "cow"]
    assert len(loads[1][0]) + len(loads[1][1]) == 25


def _folder_with_bad_files(root):
    for split, count in (("train", 6), ("test", 3)):
        for cls in ("a", "b"):
            for k in range(count):
                save_image(root / split / cls / f"{k}.png", rgb(4, 4, (k, 10 * k, 7)))
    return [
        corrupt_png(root / "train" / "a" / "broken.png"),
        truncated_jpeg(root / "train" / "b" / "cut.jpg"),
        corrupt_png(root / "test" / "b" / "junk.png"),
    ]


def test_folder_bad_images_are_all_named(tmp_path, monkeypatch):
    bad = _folder_with_bad_files(tmp_path)
    for split in ("train", "test"):
        with pytest.raises(DatasetError, match="3 unreadable image file") as caught:
            load_dataset(f"folder:{tmp_path}", split)
        message = str(caught.value)
        assert all(f"cannot read image {path}" in message for path in bad)
        assert "image file is truncated" in message and "--skip-bad-images" in message
    monkeypatch.setattr(folder_module, "_MAX_NAMED", 2)
    with pytest.raises(DatasetError, match=r"\.\.\. and 1 more") as caught:
        load_dataset(f"folder:{tmp_path}", "train")
    assert len(re.findall("cannot read image", str(caught.value))) == 2


def test_folder_skip_bad_images_leaves_them_out_with_a_count(tmp_path, caplog):
    _folder_with_bad_files(tmp_path)
    with caplog.at_level(logging.WARNING, logger="supcon.data.folder"):
        train = load_dataset(f"folder:{tmp_path}", "train", skip_bad_images=True)
        test = load_dataset(f"folder:{tmp_path}", "test", skip_bad_images=True)
    assert len(train) == 12 and len(test) == 6 and train.images.shape[1:] == (3, 4, 4)
    assert train.labels.tolist() == [0] * 6 + [1] * 6 and test.labels.tolist() == [0] * 3 + [1] * 3
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 2
    assert "skipped 2 unreadable image file(s) of the train split" in skipped[0]
    assert "broken.png" in skipped[0] and "cut.jpg" in skipped[0] and "junk.png" not in skipped[0]
    assert "skipped 1 unreadable image file(s) of the test split" in skipped[1]


def test_folder_of_only_bad_images_fails_even_when_skipping(tmp_path):
    for k in range(3):
        corrupt_png(tmp_path / "a" / f"{k}.png")
        corrupt_png(tmp_path / "b" / f"{k}.png")
    with pytest.raises(DatasetError, match="no readable image files"):
        load_dataset(f"folder:{tmp_path}", "train", skip_bad_images=True)


def _flat_high_bit(path, value, dtype, side: int = 4):
    """A flat single-channel image of ``value`` with ``dtype`` (uint16 -> I;16 PNG, int32 -> I, float32 -> F)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, dtype=dtype)).save(path)
    return path


def _pixels_by_class(dataset) -> dict[str, set[int]]:
    return {dataset.classes[k]: set(dataset.images[dataset.labels == k].flatten().tolist())
            for k in range(dataset.num_classes)}


def test_sixteen_bit_images_are_scaled_by_their_bit_depth_not_clipped(tmp_path):
    """0, 30000 and 65535 in a 16-bit PNG are 0, 117 and 255 (round(v * 255 / 65535)), not 0, 255, 255."""
    for name, value in (("dark", 0), ("mid", 30000), ("white", 65535)):
        for i in range(4):
            _flat_high_bit(tmp_path / name / f"{i}.png", value, np.uint16)
    assert Image.open(tmp_path / "mid" / "0.png").mode.startswith("I;16")
    both = [load_dataset(f"folder:{tmp_path}", split, test_fraction=0.25) for split in ("train", "test")]
    for dataset in both:
        assert dataset.channels == 1
        assert _pixels_by_class(dataset) == {"dark": {0}, "mid": {117}, "white": {255}}


def test_thirty_two_bit_and_float_images_are_scaled_or_refused(tmp_path):
    _flat_high_bit(tmp_path / "int" / "a.tif", 65535, np.int32)
    _flat_high_bit(tmp_path / "int" / "b.tif", 1000, np.int32)  # 1000 * 255 / 65535 = 3.89
    _flat_high_bit(tmp_path / "float" / "a.tif", 1.0, np.float32)
    _flat_high_bit(tmp_path / "float" / "b.tif", 0.5, np.float32)  # 127.5 rounds to even: 128
    assert {Image.open(tmp_path / k / "a.tif").mode for k in ("int", "float")} == {"I", "F"}
    train = load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.5, seed=1)
    test = load_dataset(f"folder:{tmp_path}", "test", test_fraction=0.5, seed=1)
    seen = {k: _pixels_by_class(train)[k] | _pixels_by_class(test)[k] for k in train.classes}
    assert seen == {"int": {255, 4}, "float": {255, 128}}
    # Values whose scale is unknown are refused, naming the file and the range.
    _flat_high_bit(tmp_path / "float" / "c.tif", 200.0, np.float32)
    _flat_high_bit(tmp_path / "int" / "c.tif", 100000, np.int32)
    with pytest.raises(DatasetError) as info:
        load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.5)
    message = str(info.value)
    assert "2 unreadable image file(s)" in message and "unknown pixel range" in message
    assert re.search(r"float[/\\]c\.tif.*only float images in 0\.\.1", message)
    assert re.search(r"int[/\\]c\.tif.*outside the 16-bit range 0\.\.65535", message)


def test_sixteen_bit_grey_among_colour_images_is_scaled_too(tmp_path):
    for i in range(3):
        save_image(tmp_path / "colour" / f"{i}.png", rgb(4, 4, (10, 20, 30)))
        _flat_high_bit(tmp_path / "grey" / f"{i}.png", 32896, np.uint16)  # 32896 * 255 / 65535 = 128
    train = load_dataset(f"folder:{tmp_path}", "train", test_fraction=0.34)
    assert train.channels == 3
    grey = train.images[train.labels == train.classes.index("grey")]
    assert set(grey.flatten().tolist()) == {128}
