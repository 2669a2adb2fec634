"""Tests for supcon.data.npz: numpy archives written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dataset_files import sorted_rows

from supcon.data import DatasetError, load_dataset


def test_npz_with_test_arrays_and_channels_last(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    test_images = rng.integers(0, 256, size=(2, 4, 4, 3), dtype=np.uint8)
    path = tmp_path / "toy.npz"
    np.savez(path, images=images, labels=np.array([0, 1, 2, 0, 1]), images_test=test_images,
             labels_test=np.array([2, 2], dtype=np.int32), classes=np.array(["r", "g", "b"]))
    train = load_dataset(f"npz:{path}", "train")
    test = load_dataset(f"npz:{path}", "test")
    assert torch.equal(train.images, torch.from_numpy(images).permute(0, 3, 1, 2))
    assert train.labels.tolist() == [0, 1, 2, 0, 1]
    assert train.classes == ["r", "g", "b"] and train.name == "toy"
    assert torch.equal(test.images, torch.from_numpy(test_images).permute(0, 3, 1, 2))
    assert test.labels.dtype == torch.int64 and test.labels.tolist() == [2, 2]


def test_npz_without_test_arrays_is_split_and_resized(tmp_path):
    images = np.full((20, 6, 6), 77, dtype=np.uint8)
    images[:, 0, 0] = np.arange(20)
    path = tmp_path / "gray.npz"
    np.savez(path, images=images, labels=np.arange(20) % 4)
    train = load_dataset(f"npz:{path}", "train", test_fraction=0.2, seed=3)
    test = load_dataset(f"npz:{path}", "test", test_fraction=0.2, seed=3)
    assert (len(train), len(test)) == (16, 4) and train.channels == 1
    assert train.classes == ["0", "1", "2", "3"] and sorted(test.labels.tolist()) == [0, 1, 2, 3]
    both = torch.cat([train.images, test.images])
    assert sorted_rows(both) == sorted_rows(torch.from_numpy(images[:, None]))
    big = load_dataset(f"npz:{path}", "test", test_fraction=0.2, seed=3, image_size=12)
    assert big.images.shape == (4, 1, 12, 12)
    assert bool((big.images[:, :, 6:, 6:] == 77).all())  # flat regions stay flat after bilinear upsampling


def test_npz_non_square_is_centre_cropped(tmp_path):
    images = np.zeros((4, 2, 6), dtype=np.uint8)
    images[:, :, 2:4] = 200
    path = tmp_path / "wide.npz"
    labels = np.array([0, 1, 0, 1])
    np.savez(path, images=images, labels=labels, images_test=images, labels_test=labels)
    train = load_dataset(f"npz:{path}", "train")
    assert train.images.shape == (4, 1, 2, 2) and bool((train.images == 200).all())


GOOD_IMAGES = np.zeros((2, 4, 4), np.uint8)
GOOD_LABELS = np.zeros(2, int)


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        ({"pixels": GOOD_IMAGES, "labels": GOOD_LABELS}, r"missing array\(s\) \['images'\]"),
        ({"images": GOOD_IMAGES.astype(np.float32), "labels": GOOD_LABELS}, "must be uint8, got float32"),
        ({"images": np.zeros((2, 4, 4, 5), np.uint8), "labels": GOOD_LABELS}, r"shape .*\(2, 4, 4, 5\)"),
        ({"images": GOOD_IMAGES, "labels": np.zeros(3, int)}, r"'labels' must have shape \(2,\)"),
        ({"images": GOOD_IMAGES, "labels": np.zeros(2, float)}, "'labels' must hold integers"),
        (
            {"images": GOOD_IMAGES, "labels": GOOD_LABELS, "images_test": GOOD_IMAGES},
            "has 'images_test' but not 'labels_test'",
        ),
        (
            {"images": GOOD_IMAGES, "labels": np.array([0, 3]), "classes": np.array(["a", "b"])},
            "labels out of range: found 3",
        ),
    ],
)
def test_npz_bad_contents(tmp_path, arrays, pattern):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(f"npz:{path}", "train")


@pytest.mark.parametrize("values", [[100, 101, 102], [1, 2, 3], [0, 10**6, 7]])
def test_sparse_labels_become_dense_classes_named_by_their_values(tmp_path, caplog, values):
    images = np.arange(12 * 16, dtype=np.uint8).reshape(12, 4, 4)
    labels = np.array(values * 4, dtype=np.int64)
    test_labels = np.array(values[::-1], dtype=np.int32)
    path = tmp_path / "sparse.npz"
    np.savez(path, images=images, labels=labels, images_test=images[:3], labels_test=test_labels)
    with caplog.at_level("INFO", logger="supcon.data.npz"):
        train = load_dataset(f"npz:{path}", "train")
    test = load_dataset(f"npz:{path}", "test")
    ordered = sorted(values)
    assert train.classes == [str(v) for v in ordered] and train.num_classes == 3
    assert [train.classes[k] for k in train.labels.tolist()] == [str(v) for v in labels]
    assert test.classes == train.classes
    assert [test.classes[k] for k in test.labels.tolist()] == [str(v) for v in test_labels]
    assert "remapped to classes 0..2" in caplog.text and str(path) in caplog.text


def test_sparse_labels_of_a_stratified_split_keep_every_class(tmp_path):
    path = tmp_path / "strat.npz"
    np.savez(path, images=np.zeros((20, 4, 4), np.uint8), labels=np.repeat([5, 50, 500, 5000], 5))
    train = load_dataset(f"npz:{path}", "train", test_fraction=0.2)
    test = load_dataset(f"npz:{path}", "test", test_fraction=0.2)
    assert train.classes == test.classes == ["5", "50", "500", "5000"]
    assert sorted(test.labels.tolist()) == [0, 1, 2, 3] and sorted(set(train.labels.tolist())) == [0, 1, 2, 3]


def test_dense_labels_keep_their_default_names(tmp_path, caplog):
    path = tmp_path / "dense.npz"
    np.savez(path, images=GOOD_IMAGES, labels=np.array([1, 0]), images_test=GOOD_IMAGES, labels_test=np.array([0, 2]))
    with caplog.at_level("INFO", logger="supcon.data.npz"):
        train = load_dataset(f"npz:{path}", "train")
    assert train.classes == ["0", "1", "2"] and train.labels.tolist() == [1, 0] and "remapped" not in caplog.text


@pytest.mark.parametrize(
    "arrays, pattern",
    [
        ({"images": GOOD_IMAGES, "labels": np.array([0, -1])}, r"'labels' holds negative labels \(found -1\)"),
        (
            {"images": GOOD_IMAGES, "labels": GOOD_LABELS, "images_test": GOOD_IMAGES,
             "labels_test": np.array([-3, 0])},
            r"'labels_test' holds negative labels \(found -3\)",
        ),
        ({"images": GOOD_IMAGES, "labels": np.array([0.0, 1.5])}, r"'labels' must hold integers, got float64"),
        ({"images": GOOD_IMAGES, "labels": np.array(["a", "b"])}, r"'labels' must hold integers"),
    ],
)
def test_negative_and_non_integer_labels_are_dataset_errors(tmp_path, arrays, pattern):
    path = tmp_path / "bad_labels.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(f"npz:{path}", "train")
