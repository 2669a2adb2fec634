"""Tests for supcon.data.idx: MNIST-format IDX files written here (plus the shared MNIST test set)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import sorted_rows

from supcon.data import DatasetError, load_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO_ROOT / ".." / "shared" / "data" / "mnist-test"


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress: bool | None = None) -> Path:
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def idx_sample(n: int, classes: int = 3, side: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)  # every image unique, so splits can be compared as sets
    return images, labels


def test_idx_single_gz_pair_is_split_stratified(tmp_path):
    images, labels = idx_sample(30)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    train = load_dataset(f"idx:{tmp_path}", "train", test_fraction=0.2)
    test = load_dataset(f"idx:{tmp_path}", "test", test_fraction=0.2)
    assert (len(train), len(test)) == (24, 6)
    assert train.images.shape[1:] == (1, 4, 4)
    assert test.labels.bincount().tolist() == [2, 2, 2]
    assert train.classes == ["0", "1", "2"] and train.name == tmp_path.name
    # A partition of the file, with each image still carrying its own label.
    both = torch.cat([train.images, test.images])
    assert sorted_rows(both) == sorted_rows(torch.from_numpy(images)[:, None])
    for image, label in zip(both, torch.cat([train.labels, test.labels])):
        index = int(image[0, 0, 0])
        assert int(labels[index]) == int(label)


def test_idx_train_and_t10k_raw_are_the_splits(tmp_path):
    train_images, train_labels = idx_sample(12, seed=1)
    test_images, test_labels = idx_sample(5, seed=2)
    write_idx(tmp_path / "train-images-idx3-ubyte", train_images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", train_labels)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", test_images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", test_labels)
    train = load_dataset(f"idx:{tmp_path}", "train")
    test = load_dataset(f"idx:{tmp_path}", "test")
    assert torch.equal(train.images[:, 0], torch.from_numpy(train_images))
    assert torch.equal(train.labels, torch.from_numpy(train_labels))
    assert torch.equal(test.images[:, 0], torch.from_numpy(test_images))
    assert torch.equal(test.labels, torch.from_numpy(test_labels))


def test_idx_generic_names_and_uncompressed_copy_preferred(tmp_path):
    images, labels = idx_sample(10, classes=2)
    write_idx(tmp_path / "my-images.idx3-ubyte", images)
    write_idx(tmp_path / "my-images.idx3-ubyte.gz", np.zeros_like(images))  # stale gz beside it: ignored
    write_idx(tmp_path / "my-labels.idx1-ubyte.gz", labels)
    (tmp_path / "notes.txt").write_text("hello")
    train = load_dataset(f"idx:{tmp_path}", "train", test_fraction=0.4)
    test = load_dataset(f"idx:{tmp_path}", "test", test_fraction=0.4)
    both = torch.cat([train.images, test.images])
    assert sorted_rows(both) == sorted_rows(torch.from_numpy(images[:, None]))


def test_idx_bad_magic_names_file(tmp_path):
    images, labels = idx_sample(6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, magic=2049)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte: magic number 2049, expected 2051"):
        load_dataset(f"idx:{tmp_path}", "train")


def test_idx_count_mismatch_and_truncation_name_files(tmp_path):
    images, labels = idx_sample(6)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:5])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte has 6 images.*-labels-idx1-ubyte has 5"):
        load_dataset(f"idx:{tmp_path}", "train")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    raw = (tmp_path / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw[:-3])
    with pytest.raises(DatasetError, match="t10k-images-idx3-ubyte: header dimensions"):
        load_dataset(f"idx:{tmp_path}", "train")


def test_idx_ambiguous_or_empty_dir(tmp_path):
    with pytest.raises(DatasetError, match="found images files \\[\\]"):
        load_dataset(f"idx:{tmp_path}", "train")
    images, labels = idx_sample(6)
    for prefix in ("a", "b"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    with pytest.raises(DatasetError, match="exactly one"):
        load_dataset(f"idx:{tmp_path}", "train")


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared MNIST test set not present")
def test_shared_mnist_test_set_split():
    train = load_dataset(f"idx:{SHARED_MNIST}", "train")
    test = load_dataset(f"idx:{SHARED_MNIST}", "test")
    assert (len(train), len(test)) == (8000, 2000)
    assert train.images.shape[1:] == (1, 28, 28) and test.image_size == 28
    assert train.num_classes == 10
    assert test.labels.bincount(minlength=10).min() > 150
