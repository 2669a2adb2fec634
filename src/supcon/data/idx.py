"""Reader for MNIST-format IDX files (raw or gzip): spec ``idx:DIR``.

``DIR`` holds ``train-images-idx3-ubyte[.gz]``/``train-labels-idx1-ubyte[.gz]`` and/or the ``t10k-`` pair;
any names matching ``*images*idx3*``/``*labels*idx1*`` are accepted (names starting with ``train`` are the
train pair, ``t10k`` or ``test`` the test pair; an uncompressed copy is preferred over its ``.gz``). With
both pairs they are the two splits; with exactly one pair it is split stratified.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from supcon.data.base import SPLITS, DatasetError, ImageDataset, ReadRequest, _default_classes, _make_dataset
from supcon.data.stratified import _stratified_indices

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)


def read_idx(root: Path, request: ReadRequest) -> ImageDataset:
    """One split of the IDX files in ``root``: the train/t10k pairs, else one pair split stratified."""
    if not root.is_dir():
        raise DatasetError(f"idx: {root} is not a directory of IDX files")
    images = _idx_candidates(root, "images", "idx3")
    labels = _idx_candidates(root, "labels", "idx1")
    pairs = _idx_split_pairs(images, labels)
    if len(pairs) == 2:
        return _read_split_pairs(root, pairs, request.split)
    if len(images) == 1 and len(labels) == 1:
        return _read_single_pair(root, images[0], labels[0], request)
    raise DatasetError(
        f"idx: {root} must hold train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] and "
        f"t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz], or exactly one *images*idx3* / "
        f"*labels*idx1* pair; found images files {[p.name for p in images]} and labels files "
        f"{[p.name for p in labels]}"
    )


def _read_split_pairs(root: Path, pairs: dict[str, tuple[Path, Path]], split: str) -> ImageDataset:
    """The official split: classes cover the labels of both pairs."""
    all_labels = {role: _read_idx(lab, _IDX_LABELS_MAGIC) for role, (_, lab) in pairs.items()}
    image_path, label_path = pairs[split]
    split_images = _read_idx(image_path, _IDX_IMAGES_MAGIC)
    split_labels = all_labels[split]
    _check_idx_counts(image_path, split_images, label_path, split_labels)
    classes = _default_classes(*all_labels.values())
    return _make_dataset(split_images[:, None], split_labels, classes, root.name)


def _read_single_pair(root: Path, image_path: Path, label_path: Path, request: ReadRequest) -> ImageDataset:
    """One images/labels pair (e.g. only the MNIST test set), split stratified."""
    all_images = _read_idx(image_path, _IDX_IMAGES_MAGIC)
    all_labels = _read_idx(label_path, _IDX_LABELS_MAGIC)
    _check_idx_counts(image_path, all_images, label_path, all_labels)
    index = _stratified_indices(all_labels, request.split, request.seed, request.test_fraction, str(root))
    classes = _default_classes(all_labels)
    return _make_dataset(all_images[index][:, None], all_labels[index], classes, root.name)


def _read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Parse one IDX file (raw or gzip) of unsigned bytes; returns an array of the header's dimensions."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DatasetError(f"cannot read IDX file {path}: {err}") from err
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DatasetError(
                f"IDX file {path} looks gzip-compressed but cannot be decompressed: {err}"
            ) from err
    what = "images (idx3)" if expected_magic == _IDX_IMAGES_MAGIC else "labels (idx1)"
    if len(raw) < 4:
        raise DatasetError(f"IDX file {path} is too short ({len(raw)} bytes) to hold a header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        raise DatasetError(f"IDX file {path}: magic number {magic}, expected {expected_magic} for {what}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"IDX file {path} is truncated: {len(raw)} bytes, the header alone needs {header}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected_bytes = math.prod(dims)
    if len(raw) - header != expected_bytes:
        raise DatasetError(
            f"IDX file {path}: header dimensions {dims} need {expected_bytes} bytes of data, "
            f"the file has {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _idx_candidates(root: Path, kind_word: str, idx_word: str) -> list[Path]:
    chosen: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        name = path.name.lower()
        if not path.is_file() or name.startswith(".") or kind_word not in name or idx_word not in name:
            continue
        key = name[:-3] if name.endswith(".gz") else name
        if key not in chosen or not name.endswith(".gz"):  # prefer the uncompressed copy
            chosen[key] = path
    return sorted(chosen.values())


def _idx_role(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("train"):
        return "train"
    if name.startswith(("t10k", "test")):
        return "test"
    return None


def _idx_split_pairs(images: list[Path], labels: list[Path]) -> dict[str, tuple[Path, Path]]:
    """``{role: (images file, labels file)}`` for each split with exactly one file of each kind."""
    pairs = {}
    for role in SPLITS:
        role_images = [p for p in images if _idx_role(p) == role]
        role_labels = [p for p in labels if _idx_role(p) == role]
        if len(role_images) == 1 and len(role_labels) == 1:
            pairs[role] = (role_images[0], role_labels[0])
    return pairs


def _check_idx_counts(image_path: Path, images: np.ndarray, label_path: Path, labels: np.ndarray) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"IDX files disagree: {image_path} has {images.shape[0]} images, "
            f"{label_path} has {labels.shape[0]} labels"
        )
