"""Tests for supcon.data.decode: headers and pixels of image files, serially and in a pool."""

from __future__ import annotations

import multiprocessing
import sys

import numpy as np
import pytest
from PIL import Image

from dataset_files import corrupt_png, noise, save_image, truncated_jpeg, write_image_tree
from supcon.data import DatasetError
from supcon.data import decode as decode_module
from supcon.data.decode import ImageDecoder, available_cpus, default_backend, read_image


def _files(tmp_path):
    root = write_image_tree(tmp_path / "tree")
    paths = sorted(str(p) for p in root.rglob("*.*"))
    paths.insert(5, str(corrupt_png(tmp_path / "bad.png")))
    paths.insert(11, str(truncated_jpeg(tmp_path / "cut.jpg")))
    paths.append(str(save_image(tmp_path / "rgba.png", noise(9, 8, 3, channels=4))))
    return paths


@pytest.mark.parametrize("backend", ["process", "thread"])
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_pooled_headers_and_pixels_equal_the_serial_ones(tmp_path, monkeypatch, backend, mode):
    paths = _files(tmp_path)
    monkeypatch.setattr(decode_module, "_PARALLEL_MIN_FILES", 0)
    monkeypatch.setattr(decode_module, "_MIN_CHUNK", 1)  # many chunks: the order must survive the pool
    with ImageDecoder(workers=1) as serial, ImageDecoder(workers=3, backend=backend) as pooled:
        assert serial.headers(paths) == pooled.headers(paths)
        (images, failures), (pooled_images, pooled_failures) = (d.decode(paths, mode, 6) for d in (serial, pooled))
    assert images.shape == (len(paths), 1 if mode == "L" else 3, 6, 6) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, pooled_images)
    assert failures == pooled_failures and [i for i, _ in failures] == [5, 11]
    assert "bad.png" in failures[0][1] and "truncated" in failures[1][1]
    # Row k is exactly read_image of file k.
    expected = read_image(paths[0], mode, 6)
    np.testing.assert_array_equal(images[0], expected.reshape(6, 6, -1).transpose(2, 0, 1))


def test_headers_report_unreadable_files_in_order(tmp_path):
    good = str(save_image(tmp_path / "a.png", noise(5, 7, 0)))
    bad = str(corrupt_png(tmp_path / "b.png"))
    with ImageDecoder(workers=1) as decoder:
        headers, failures = decoder.headers([good, bad, good])
    assert headers == [((7, 5), "RGB"), None, ((7, 5), "RGB")]
    assert failures == [(1, f"cannot read image {bad}: cannot identify image file {bad!r}")]


def test_read_image_resizes_the_shorter_side_and_centre_crops(tmp_path):
    tall = np.zeros((12, 6), dtype=np.uint8)
    tall[3:9] = 200
    path = str(save_image(tmp_path / "tall.png", tall))
    np.testing.assert_array_equal(read_image(path, "L", 6), np.full((6, 6), 200, dtype=np.uint8))
    small = read_image(path, "RGB", 3)
    assert small.shape == (3, 3, 3)
    with Image.open(path) as image:
        reference = image.convert("RGB").resize((3, 6), Image.Resampling.BILINEAR).crop((0, 1, 3, 4))
    np.testing.assert_array_equal(small, np.asarray(reference))
    with pytest.raises(DatasetError, match="cannot read image"):
        read_image(str(truncated_jpeg(tmp_path / "cut.jpg")), "RGB", 6)


def test_worker_defaults():
    assert available_cpus() >= 1
    assert ImageDecoder().workers == available_cpus()
    assert default_backend() in ("process", "thread")
    with pytest.raises(ValueError, match="backend must be"):
        ImageDecoder(backend="gpu")


def _backend_in_child(results):
    results.put(default_backend())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the process backend is Linux-only")
def test_daemonic_processes_decode_with_threads():
    assert default_backend() == "process"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_backend_in_child, args=(results,), daemon=True)
    child.start()
    assert results.get(timeout=30) == "thread"
    child.join(timeout=30)
