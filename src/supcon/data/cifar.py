"""Reader for CIFAR-10 / CIFAR-100, official python pickles: specs ``cifar10:DIR``, ``cifar100:DIR``.

``DIR`` is the extracted ``cifar-10-batches-py``/``cifar-100-python`` folder or its parent; the splits are
the official ``data_batch_1..5``/``test_batch`` (CIFAR-10) and ``train``/``test`` (CIFAR-100, fine labels).
Pickles are read by an unpickler that accepts only numpy arrays and dtypes, so a malicious file cannot run
code. Nothing is downloaded unless ``download=True``: then the official tarball is fetched into ``DIR``
(md5 checked) when the files are missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tarfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supcon.data.base import DatasetError, ImageDataset, ReadRequest, _decode_names, _make_dataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _CifarFormat:
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    url: str
    md5: str

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_CIFAR_FORMATS = {
    "cifar10": _CifarFormat(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{k}" for k in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_key="labels",
        names_key="label_names",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
    ),
    "cifar100": _CifarFormat(
        folder="cifar-100-python",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_key="fine_labels",
        names_key="fine_label_names",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
    ),
}

# The only globals a CIFAR pickle needs (numpy arrays and dtypes); anything else is refused, so a
# malicious pickle cannot run code.
_PICKLE_ALLOWED = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


def read_cifar(kind: str, path: Path | None, request: ReadRequest) -> ImageDataset:
    """One official split of ``kind`` (``"cifar10"`` or ``"cifar100"``) from ``path``."""
    fmt = _CIFAR_FORMATS[kind]
    root = _cifar_root(kind, path, request.download)
    files = fmt.train_files if request.split == "train" else fmt.test_files
    for name in (*files, fmt.meta_file):
        if not (root / name).is_file():
            raise DatasetError(f"{kind}: {root / name} is missing")
    batches = [_read_cifar_batch(root / name, fmt) for name in files]
    meta = _read_cifar_pickle(root / fmt.meta_file)
    if fmt.names_key not in meta:
        raise DatasetError(
            f"CIFAR meta file {root / fmt.meta_file} has no {fmt.names_key!r}; found {sorted(meta)}"
        )
    classes = _decode_names(meta[fmt.names_key])
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return _make_dataset(images, labels, classes, kind)


def read_cifar10(path: Path | None, request: ReadRequest) -> ImageDataset:
    """One official split of CIFAR-10 (spec ``cifar10:DIR``)."""
    return read_cifar("cifar10", path, request)


def read_cifar100(path: Path | None, request: ReadRequest) -> ImageDataset:
    """One official split of CIFAR-100 with its fine labels (spec ``cifar100:DIR``)."""
    return read_cifar("cifar100", path, request)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        if module.startswith("numpy.core."):
            try:  # numpy >= 2 renamed numpy.core to numpy._core; avoid its deprecation shim
                return super().find_class("numpy._core." + module[len("numpy.core.") :], name)
            except (ImportError, AttributeError):
                pass
        return super().find_class(module, name)


def _read_cifar_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            obj = _ArrayUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as err:
        raise DatasetError(f"cannot read CIFAR pickle {path}: {err}") from err
    if not isinstance(obj, dict):
        raise DatasetError(f"CIFAR pickle {path} holds a {type(obj).__name__}, expected a dict")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in obj.items()}


def _read_cifar_batch(path: Path, fmt: _CifarFormat) -> tuple[np.ndarray, np.ndarray]:
    """One batch pickle: ``images (N, 3, 32, 32)`` uint8 and ``labels (N,)`` int64, checked."""
    batch = _read_cifar_pickle(path)
    for key in ("data", fmt.label_key):
        if key not in batch:
            raise DatasetError(f"CIFAR pickle {path} has no {key!r} entry; found {sorted(batch)}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetError(
            f"CIFAR pickle {path}: 'data' must be uint8 of shape (N, 3072), "
            f"got {data.dtype} of shape {data.shape}"
        )
    labels = np.asarray(batch[fmt.label_key], dtype=np.int64).reshape(-1)
    if labels.shape[0] != data.shape[0]:
        raise DatasetError(
            f"CIFAR pickle {path}: {data.shape[0]} images but {labels.shape[0]} {fmt.label_key}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_root(kind: str, path: Path | None, download: bool) -> Path:
    fmt = _CIFAR_FORMATS[kind]
    assert path is not None
    first = fmt.train_files[0]
    for candidate in (path, path / fmt.folder):
        if (candidate / first).is_file():
            return candidate
    if download:
        _download_cifar(fmt, path)
        if (path / fmt.folder / first).is_file():
            return path / fmt.folder
        raise DatasetError(
            f"{kind}: extracted {fmt.archive} into {path} but {path / fmt.folder / first} is missing"
        )
    where = "does not exist" if not path.exists() else f"holds no {first} (nor {fmt.folder}/{first})"
    raise DatasetError(
        f"{kind}: {path} {where}. Put the extracted {fmt.folder} folder from {fmt.url} there "
        f"(or pass download=True / --download to fetch it)"
    )


def _download_cifar(fmt: _CifarFormat, root: Path) -> None:
    """Fetch ``fmt.url`` into ``root`` (md5 checked) and extract it; reuse a tarball already there."""
    manual = (
        f"Download {fmt.url} by hand (md5 {fmt.md5}) and extract it into {root}, "
        f"so that {root / fmt.folder / fmt.train_files[0]} exists"
    )
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(f"cannot create download directory {root}: {err}") from err
    archive = root / fmt.archive
    if not (archive.is_file() and _md5(archive) == fmt.md5):
        _fetch_checked(fmt.url, fmt.md5, archive, manual)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"cannot extract {archive}: {err}. {manual}") from err


def _fetch_checked(url: str, md5: str, archive: Path, manual: str) -> None:
    """Download ``url`` to ``archive`` through a ``.part`` file, kept only when its md5 is ``md5``."""
    partial = archive.with_name(archive.name + ".part")
    logger.info("downloading %s to %s", url, archive)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
    except (urllib.error.URLError, OSError) as err:
        partial.unlink(missing_ok=True)
        raise DatasetError(f"download of {url} failed ({err}); no internet access? {manual}") from err
    if digest.hexdigest() != md5:
        partial.unlink(missing_ok=True)
        raise DatasetError(
            f"download of {url} is corrupt: md5 {digest.hexdigest()}, expected {md5}. {manual}"
        )
    os.replace(partial, archive)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
