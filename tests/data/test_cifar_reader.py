"""Tests for supcon.data.cifar: CIFAR-10/100 pickles written here, the safe unpickler, the download."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from supcon.data import DatasetError, load_dataset
from supcon.data import cifar as cifar_module


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

    monkeypatch.setattr(cifar_module.urllib.request, "urlopen", forbidden)
    with pytest.raises(DatasetError, match=r"download=True"):
        load_dataset(f"cifar10:{tmp_path}", "train")


def test_cifar_download_failure_is_clear(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(cifar_module.urllib.request, "urlopen", offline)
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
    fmt = cifar_module._CIFAR_FORMATS["cifar10"]
    calls = []

    def fake_urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(tarball)

    monkeypatch.setattr(cifar_module.urllib.request, "urlopen", fake_urlopen)
    with pytest.raises(DatasetError, match="corrupt: md5"):
        load_dataset(f"cifar10:{tmp_path / 'bad'}", "train", download=True)
    good = dataclasses.replace(fmt, md5=hashlib.md5(tarball).hexdigest())
    monkeypatch.setitem(cifar_module._CIFAR_FORMATS, "cifar10", good)
    target = tmp_path / "downloaded"
    train = load_dataset(f"cifar10:{target}", "train", download=True)
    assert len(train) == 10 and (target / "cifar-10-batches-py" / "test_batch").is_file()
    load_dataset(f"cifar10:{target}", "test", download=True)  # files present: no second fetch
    assert calls == [fmt.url, fmt.url]
