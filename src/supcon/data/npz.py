"""Reader for numpy archives: spec ``npz:FILE``.

Arrays: ``images`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3}, ``labels`` ``(N,)``
integers >= 0, optional ``images_test``/``labels_test`` (the test split; otherwise a stratified split) and
optional ``classes`` (strings). The archive is loaded with ``allow_pickle=False``.

With ``classes`` the labels index it. Without it, labels that are already ``0..K-1`` (every value in
either split) are the classes ``"0"``...; any other set of values (``100, 101, 102``, or ``1..10``, or
``0, 10**6``) is remapped to dense classes ``0..K-1`` in increasing order of the original value, which
becomes the class name (``classes[k] == str(value)``), and a log line says so. Negative labels are an error.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from supcon.data.base import (
    DatasetError,
    ImageDataset,
    ReadRequest,
    _decode_names,
    _default_classes,
    _make_dataset,
)
from supcon.data.stratified import _stratified_indices

logger = logging.getLogger(__name__)


@dataclass
class _NpzArrays:
    """The checked arrays of one archive; images already ``(N, C, H, W)``."""

    images: np.ndarray
    labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    classes: np.ndarray | None


def read_npz(path: Path, request: ReadRequest) -> ImageDataset:
    """One split of the archive at ``path``: its test arrays if present, else a stratified split."""
    arrays = _read_npz_arrays(path, request.image_size)
    label_sets = [arrays.labels] if arrays.test_labels is None else [arrays.labels, arrays.test_labels]
    if arrays.classes is None:
        classes = _dense_labels(arrays, label_sets, path)
    else:
        classes = _npz_classes(arrays.classes, label_sets, path)
    if arrays.test_images is not None:
        if request.split == "train":
            chosen_images, chosen_labels = arrays.images, arrays.labels
        else:
            chosen_images, chosen_labels = arrays.test_images, arrays.test_labels
    else:
        index = _stratified_indices(
            arrays.labels, request.split, request.seed, request.test_fraction, str(path)
        )
        chosen_images, chosen_labels = arrays.images[index], arrays.labels[index]
    return _make_dataset(chosen_images, chosen_labels, classes, path.stem)


def _read_npz_arrays(path: Path, image_size: int | None) -> _NpzArrays:
    """Open ``path`` and read and check every array it holds (test images must match the train ones)."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise DatasetError(f"npz: cannot read {path}: {err}") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DatasetError(
            f"npz: {path} is a single .npy array, expected an .npz archive with 'images' and 'labels'"
        )
    with archive:
        keys = set(archive.files)
        has_test = _check_npz_keys(keys, path)
        images = _npz_images(_npz_array(archive, "images", path), "images", path)
        labels = _npz_labels(_npz_array(archive, "labels", path), "labels", images.shape[0], path)
        test_images, test_labels = None, None
        if has_test:
            test_images = _npz_images(_npz_array(archive, "images_test", path), "images_test", path)
            test_labels = _npz_labels(
                _npz_array(archive, "labels_test", path), "labels_test", test_images.shape[0], path
            )
            if test_images.shape[1] != images.shape[1] or (
                image_size is None and test_images.shape[2:] != images.shape[2:]
            ):
                raise DatasetError(
                    f"npz {path}: 'images_test' (C, H, W) = {test_images.shape[1:]} differs from 'images' "
                    f"{images.shape[1:]} (pass image_size to resize both)"
                )
        classes = _npz_array(archive, "classes", path) if "classes" in keys else None
    return _NpzArrays(images, labels, test_images, test_labels, classes)


def _check_npz_keys(keys: set[str], path: Path) -> bool:
    """Check the required arrays are there and the test pair is whole; returns whether it is present."""
    missing = [k for k in ("images", "labels") if k not in keys]
    if missing:
        raise DatasetError(
            f"npz {path} is missing array(s) {missing}; expected 'images' (N, H, W[, C]) uint8 and "
            f"'labels' (N,) int, optionally 'images_test'/'labels_test' and 'classes'; "
            f"found {sorted(keys)}"
        )
    has_test = [k in keys for k in ("images_test", "labels_test")]
    if any(has_test) and not all(has_test):
        present, absent = ("images_test", "labels_test")[:: 1 if has_test[0] else -1]
        raise DatasetError(f"npz {path} has {present!r} but not {absent!r}; give both or neither")
    return all(has_test)


def _dense_labels(arrays: _NpzArrays, label_sets: list[np.ndarray], path: Path) -> list[str]:
    """Class names for labels without a ``classes`` array; sparse label values are remapped in place
    (``arrays.labels`` / ``arrays.test_labels``) to ``0..K-1``, their values becoming the names."""
    values = np.unique(np.concatenate(label_sets))
    if values.size == 0 or (values[0] == 0 and values[-1] == values.size - 1):
        return _default_classes(*label_sets)
    arrays.labels = np.searchsorted(values, arrays.labels).astype(np.int64)
    if arrays.test_labels is not None:
        arrays.test_labels = np.searchsorted(values, arrays.test_labels).astype(np.int64)
    shown = ", ".join(str(v) for v in values[:5]) + (", ..." if values.size > 5 else "")
    logger.info(
        "npz %s: the labels are not 0..K-1 (%d distinct values: %s); remapped to classes 0..%d in "
        "increasing order, each named after its original value", path, values.size, shown, values.size - 1,
    )
    return [str(v) for v in values.tolist()]


def _npz_classes(classes_array: np.ndarray, label_sets: list[np.ndarray], path: Path) -> list[str]:
    """Class names from ``classes``, checked to cover every label."""
    if classes_array.dtype.kind not in "US" or classes_array.ndim != 1:
        raise DatasetError(
            f"npz {path}: 'classes' must be a 1-D array of strings, got {classes_array.dtype} "
            f"of shape {classes_array.shape}"
        )
    classes = _decode_names(classes_array.tolist())
    high = max(int(a.max()) for a in label_sets if a.size) if any(a.size for a in label_sets) else -1
    if high >= len(classes):
        raise DatasetError(
            f"npz {path}: labels out of range: found {high}, 'classes' names {len(classes)}"
        )
    return classes


def _npz_array(archive: Any, key: str, path: Path) -> np.ndarray:
    try:
        return archive[key]
    except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DatasetError(f"npz {path}: cannot read array {key!r}: {err}") from err


def _npz_images(array: np.ndarray, key: str, path: Path) -> np.ndarray:
    """``(N, H, W)`` or ``(N, H, W, C)`` uint8 -> ``(N, C, H, W)``."""
    if array.dtype != np.uint8:
        raise DatasetError(f"npz {path}: {key!r} must be uint8, got {array.dtype}")
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4 and array.shape[3] in (1, 3):
        return array.transpose(0, 3, 1, 2)
    raise DatasetError(
        f"npz {path}: {key!r} must have shape (N, H, W) or (N, H, W, C) with C in (1, 3), got {array.shape}"
    )


def _npz_labels(array: np.ndarray, key: str, count: int, path: Path) -> np.ndarray:
    """``(N,)`` integer class labels >= 0, as int64."""
    if not np.issubdtype(array.dtype, np.integer):
        hint = " (class numbers stored as floats? save them with .astype(int))" if array.dtype.kind == "f" else ""
        raise DatasetError(f"npz {path}: {key!r} must hold integers, got {array.dtype}{hint}")
    if array.ndim != 1 or array.shape[0] != count:
        raise DatasetError(
            f"npz {path}: {key!r} must have shape ({count},) to match the images, got {array.shape}"
        )
    if array.size and array.min() < 0:
        raise DatasetError(
            f"npz {path}: labels out of range: {key!r} holds negative labels (found {int(array.min())}); "
            "labels must be class numbers >= 0"
        )
    if array.size and np.issubdtype(array.dtype, np.unsignedinteger) and array.max() > np.iinfo(np.int64).max:
        raise DatasetError(f"npz {path}: {key!r} holds labels above {np.iinfo(np.int64).max}")
    return array.astype(np.int64)
