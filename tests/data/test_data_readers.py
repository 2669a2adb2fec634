"""Tests for supcon.data dataset readers, on tiny files written here (plus the shared MNIST test set)."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from supcon.data import (
    DATASET_KINDS,
    DatasetError,
    ImageDataset,
    describe_split_rules,
    label_fraction_subset,
    load_dataset,
    normalization_stats,
)
from supcon.data import datasets as datasets_module

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_MNIST = REPO_ROOT / ".." / "shared" / "data" / "mnist-test"


# ---------------------------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, compress: bool | None = None) -> Path:
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x800 | array.ndim
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def sorted_rows(images: torch.Tensor) -> list[bytes]:
    return sorted(row.numpy().tobytes() for row in images.reshape(images.shape[0], -1))


def idx_sample(n: int, classes: int = 3, side: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)  # every image unique, so splits can be compared as sets
    return images, labels


def save_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def rgb(height: int, width: int, value: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(value, dtype=np.uint8), (height, width, 3)).copy()


# ---------------------------------------------------------------------------------------------- ImageDataset

U8 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)


def test_image_dataset_properties_and_contiguity():
    images = torch.zeros(4, 6, 6, 3, dtype=torch.uint8).permute(0, 3, 1, 2)  # non-contiguous view
    ds = ImageDataset(images, torch.tensor([0, 1, 2, 1]), ["a", "b", "c"], "toy")
    assert ds.images.is_contiguous()
    assert (len(ds), ds.num_classes, ds.channels, ds.image_size) == (4, 3, 3, 6)


def test_image_dataset_labels_out_of_range_message():
    with pytest.raises(DatasetError, match="labels out of range: found 12, dataset has 10 classes"):
        ImageDataset(U8, torch.tensor([3, 12]), list("0123456789"), "x")
    with pytest.raises(DatasetError, match="found -1"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([-1, 0]), ["a"], "x")


@pytest.mark.parametrize(
    "images, labels, pattern",
    [
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), "images must be a uint8"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.tensor([0, 0]), r"uint8 .* shape \(2, 4, 4\)"),
        (U8, torch.tensor([0, 0], dtype=torch.int32), "labels must be an int64"),
        (U8, torch.tensor([0, 0, 0]), "labels has 3 entries, images has 2"),
    ],
)
def test_image_dataset_rejects_bad_tensors(images, labels, pattern):
    with pytest.raises(DatasetError, match=pattern):
        ImageDataset(images, labels, ["a"], "x")


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)


# ---------------------------------------------------------------------------------------------- spec parsing


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("imagenet:/data", "unknown dataset kind 'imagenet'"),
        ("idx:", "needs a path"),
        ("digits:/tmp", "takes no path"),
        ("", "non-empty"),
    ],
)
def test_bad_specs(spec, pattern):
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(spec, "train")


@pytest.mark.parametrize("kind", ["idx", "folder", "npz", "cifar10", "cifar100"])
def test_missing_path_names_it(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="nowhere"):
        load_dataset(f"{kind}:{missing}", "train")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"split": "val"}, "split must be one of"),
        ({"split": "train", "image_size": 0}, "image_size must be a positive int"),
        ({"split": "train", "test_fraction": 1.0}, r"test_fraction must be a number in \(0, 1\), got 1.0"),
        ({"split": "train", "download": True}, "only supported for cifar10 and cifar100"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("digits", **kwargs)


def test_kinds_and_rules_text():
    assert DATASET_KINDS == ("digits", "idx", "cifar10", "cifar100", "folder", "npz")
    rules = describe_split_rules()
    for kind in DATASET_KINDS:
        assert kind in rules


# ---------------------------------------------------------------------------------------------- digits


def test_digits_shapes_split_partition_and_determinism():
    from sklearn.datasets import load_digits

    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.num_classes == 10 and train.classes == [str(k) for k in range(10)]
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # Train + test is exactly the full dataset (as a multiset of images scaled 0..16 -> 0..255).
    full = load_digits()
    expected = torch.from_numpy(np.rint(full.images * 255 / 16).astype(np.uint8))
    assert sorted_rows(torch.cat([train.images, test.images])) == sorted_rows(expected)
    # Stratified: every class has ~20% of its samples in test.
    full_counts = np.bincount(full.target, minlength=10)
    test_counts = test.labels.bincount(minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.2 * full_counts) <= 1)
    # Same seed, same split; another seed, another split.
    again = load_dataset("digits", "test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    other = load_dataset("digits", "test", seed=1)
    assert not torch.equal(other.images, test.images)


def test_digits_image_size_resizes():
    test = load_dataset("digits", "test", image_size=16)
    assert test.images.shape == (360, 1, 16, 16) and test.images.dtype == torch.uint8


# ---------------------------------------------------------------------------------------------- IDX


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


# ---------------------------------------------------------------------------------------------- CIFAR


def cifar_batch(n: int, start: int, label_key: str, byte_keys: bool, classes: int) -> tuple[dict, np.ndarray]:
    data = (np.arange(n * 3072, dtype=np.int64).reshape(n, 3072) * 7 + start) % 251
    data = data.astype(np.uint8)
    labels = [(start + i) % classes for i in range(n)]
    batch = {"data": data, label_key: labels, "filenames": [f"img{start + i}.png" for i in range(n)]}
    if label_key == "fine_labels":
        batch["coarse_labels"] = [0] * n
    if byte_keys:  # what the original Python 2 pickles look like when loaded with encoding="bytes"
        batch = {k.encode(): v for k, v in batch.items()}
    return batch, data


def write_pickle(path: Path, obj: object, protocol: int) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def make_cifar10(root: Path, per_batch: int = 2) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    datas = []
    for k in range(1, 6):
        batch, data = cifar_batch(per_batch, 10 * k, "labels", byte_keys=k % 2 == 0, classes=10)
        write_pickle(folder / f"data_batch_{k}", batch, protocol=2 if k % 2 == 0 else 5)
        datas.append(data)
    test_batch, test_data = cifar_batch(3, 99, "labels", byte_keys=False, classes=10)
    write_pickle(folder / "test_batch", test_batch, protocol=4)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    write_pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in names]}, protocol=2)
    return np.concatenate(datas), test_data


def test_cifar10_reads_pickles_from_parent_and_folder(tmp_path):
    train_data, test_data = make_cifar10(tmp_path)
    train = load_dataset(f"cifar10:{tmp_path}", "train")
    assert train.images.shape == (10, 3, 32, 32) and train.name == "cifar10"
    assert train.classes[0] == "airplane" and train.num_classes == 10
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    assert torch.equal(train.images.reshape(10, -1), torch.from_numpy(train_data))
    assert int(train.images[0, 1, 0, 0]) == int(train_data[0, 1024])
    assert train.labels.tolist() == [(10 * k + i) % 10 for k in range(1, 6) for i in range(2)]
    test = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}", "test")
    assert torch.equal(test.images.reshape(3, -1), torch.from_numpy(test_data))
    assert test.labels.tolist() == [9, 0, 1]


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train_batch, train_data = cifar_batch(6, 40, "fine_labels", byte_keys=True, classes=100)
    test_batch, _ = cifar_batch(6, 3, "fine_labels", byte_keys=False, classes=100)
    write_pickle(folder / "train", train_batch, protocol=2)
    write_pickle(folder / "test", test_batch, protocol=5)
    meta = {"fine_label_names": [f"c{k}" for k in range(100)], "coarse_label_names": ["x"]}
    write_pickle(folder / "meta", meta, protocol=4)
    train = load_dataset(f"cifar100:{tmp_path}", "train", image_size=16)
    assert train.images.shape == (6, 3, 16, 16) and train.num_classes == 100
    assert train.labels.tolist() == [40, 41, 42, 43, 44, 45]
    test = load_dataset(f"cifar100:{tmp_path}", "test")
    assert test.labels.tolist() == [3, 4, 5, 6, 7, 8] and test.classes[5] == "c5"


def test_cifar_missing_file_and_malicious_pickle(tmp_path):
    make_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    os.remove(folder / "data_batch_3")
    with pytest.raises(DatasetError, match="data_batch_3 is missing"):
        load_dataset(f"cifar10:{tmp_path}", "train")
    write_pickle(folder / "data_batch_3", {"data": os.system}, protocol=2)  # a global that is not numpy
    with pytest.raises(DatasetError, match=r"cannot read CIFAR pickle .*data_batch_3.*refusing"):
        load_dataset(f"cifar10:{tmp_path}", "train")


def test_cifar_never_downloads_without_flag(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("urlopen called without download=True")

    monkeypatch.setattr(datasets_module.urllib.request, "urlopen", forbidden)
    with pytest.raises(DatasetError, match=r"download=True"):
        load_dataset(f"cifar10:{tmp_path}", "train")


def test_cifar_download_failure_is_clear(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets_module.urllib.request, "urlopen", offline)
    target = tmp_path / "cifar"
    with pytest.raises(DatasetError) as info:
        load_dataset(f"cifar100:{target}", "train", download=True)
    message = str(info.value)
    assert "download of https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz failed" in message
    assert "no internet" in message and str(target) in message and "by hand" in message
    assert not list(target.glob("*.part"))


def test_cifar_download_verifies_md5_and_extracts(tmp_path, monkeypatch):
    source = tmp_path / "source"
    make_cifar10(source)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    tarball = buffer.getvalue()
    fmt = datasets_module._CIFAR_FORMATS["cifar10"]
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(tarball)

    monkeypatch.setattr(datasets_module.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DatasetError, match="corrupt: md5"):
        load_dataset(f"cifar10:{tmp_path / 'bad'}", "train", download=True)
    good = dataclasses.replace(fmt, md5=hashlib.md5(tarball).hexdigest())
    monkeypatch.setitem(datasets_module._CIFAR_FORMATS, "cifar10", good)
    target = tmp_path / "downloaded"
    train = load_dataset(f"cifar10:{target}", "train", download=True)
    assert len(train) == 10 and (target / "cifar-10-batches-py" / "test_batch").is_file()
    load_dataset(f"cifar10:{target}", "test", download=True)  # files present: no second fetch
    assert calls == [fmt.url, fmt.url]


# ---------------------------------------------------------------------------------------------- folders


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
    with caplog.at_level(logging.WARNING, logger="supcon.data.datasets"):
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


# ---------------------------------------------------------------------------------------------- npz


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


# ------------------------------------------------------------------------------------------ stats, subsets


def test_normalization_stats_matches_numpy(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8, generator=generator)
    images[:, 2] //= 4
    monkeypatch.setattr(datasets_module, "_CHUNK_ELEMENTS", 100)  # force several chunks
    mean, std = normalization_stats(images)
    scaled = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-12)
    assert len(mean) == 3 and std[2] < std[0]
    with pytest.raises(DatasetError, match="must be a uint8"):
        normalization_stats(images.float())


def test_label_fraction_subset_is_balanced_and_deterministic():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 3)
    images = torch.arange(33, dtype=torch.uint8).reshape(33, 1, 1, 1)
    dataset = ImageDataset(images, labels, ["a", "b", "c", "unused"], "toy")
    subset = label_fraction_subset(dataset, 0.1, seed=5)
    assert subset.labels.bincount(minlength=4).tolist() == [1, 2, 1, 0]
    assert subset.classes == dataset.classes
    # Images still carry their own labels, in original order.
    kept = subset.images.flatten().long()
    assert torch.equal(labels[kept], subset.labels) and torch.equal(kept, kept.sort().values)
    again = label_fraction_subset(dataset, 0.1, seed=5)
    assert torch.equal(again.images, subset.images)
    draws = {tuple(label_fraction_subset(dataset, 0.5, seed=s).images.flatten().tolist()) for s in range(4)}
    assert len(draws) > 1
    half = label_fraction_subset(dataset, 0.5, seed=0)
    assert half.labels.bincount().tolist() == [5, 10, 2]
    assert torch.equal(label_fraction_subset(dataset, 1.0).images, images)


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_label_fraction_subset_rejects_bad_fraction(fraction):
    dataset = ImageDataset(torch.zeros(2, 1, 1, 1, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"], "x")
    with pytest.raises(DatasetError, match=r"fraction must be a number in \(0, 1\]"):
        label_fraction_subset(dataset, fraction)
