"""Dataset specs and the one table of readers: :func:`load_dataset` parses a spec and dispatches through it.

A dataset is named by a *spec* string, ``KIND`` or ``KIND:PATH`` (see :data:`DATASET_KINDS`). Each kind
has one reader (one module each: :mod:`~supcon.data.digits`, :mod:`~supcon.data.idx`,
:mod:`~supcon.data.cifar`, :mod:`~supcon.data.folder`, :mod:`~supcon.data.npz`). Nothing is ever
downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from supcon.data.base import SPLITS, DatasetError, ImageDataset, ReadRequest, _fit_square, _is_number
from supcon.data.cifar import read_cifar10, read_cifar100
from supcon.data.digits import read_digits
from supcon.data.folder import read_folder
from supcon.data.footprint import check_fits_in_memory
from supcon.data.idx import read_idx
from supcon.data.npz import read_npz

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Reader:
    """One dataset kind: its reader and what its spec's path means.

    Attributes:
        read: ``read(path, request) -> ImageDataset``.
        pathless: why the kind takes no path (e.g. ``"ships with scikit-learn"``), or ``None`` when the
            spec must name one.
        path_must_exist: the path is checked to exist before ``read`` is called (readers that can
            download check it themselves).
        downloads: the reader honours ``download=True``.
    """

    read: Callable[[Path | None, ReadRequest], ImageDataset]
    pathless: str | None = None
    path_must_exist: bool = True
    downloads: bool = False


_READERS: dict[str, _Reader] = {
    "digits": _Reader(read_digits, pathless="ships with scikit-learn", path_must_exist=False),
    "idx": _Reader(read_idx),
    "cifar10": _Reader(read_cifar10, path_must_exist=False, downloads=True),
    "cifar100": _Reader(read_cifar100, path_must_exist=False, downloads=True),
    "folder": _Reader(read_folder),
    "npz": _Reader(read_npz),
}

#: The dataset kinds a spec may name: ``"digits"`` or ``"KIND:PATH"`` for the others.
DATASET_KINDS: tuple[str, ...] = tuple(_READERS)


def load_dataset(
    spec: str,
    split: str,
    *,
    image_size: int | None = None,
    download: bool = False,
    seed: int = 0,
    test_fraction: float = 0.2,
    skip_bad_images: bool = False,
) -> ImageDataset:
    """Load one split of a dataset into memory as uint8 tensors.

    Spec forms (``KIND:PATH``; ``~`` is expanded), each detailed in its reader's module:

    - ``"digits"``: scikit-learn's 8x8 digits (values 0..16 scaled to 0..255), 1 channel, 10 classes.
    - ``"idx:DIR"``: MNIST-format IDX files, gzip-compressed or raw; the ``train-``/``t10k-`` pairs are
      the splits, or a single ``*images*idx3*``/``*labels*idx1*`` pair is split stratified.
    - ``"cifar10:DIR"`` / ``"cifar100:DIR"``: the official python pickles; ``DIR`` is the extracted
      ``cifar-10-batches-py``/``cifar-100-python`` folder or its parent. CIFAR-100 uses fine labels.
      ``download=True`` fetches the official tarball into ``DIR`` (md5 checked) if the files are missing.
    - ``"folder:DIR"``: ``DIR/<class>/<image files>``, with ``DIR/train`` + ``DIR/test`` (or ``DIR/val``)
      as the splits when present, else split stratified. RGB, or L when every image is grayscale (16-bit and
      0..1 float images scaled to 8 bits); the shorter side is resized to ``image_size`` (default: the most
      common shorter side) and centre-cropped.
      The first load decodes on every core and caches the uint8 arrays on disk (``$SUPCON_CACHE_DIR``,
      else ``$XDG_CACHE_HOME/supcon`` or ``~/.cache/supcon``; ``SUPCON_CACHE_DIR=off`` disables it); the
      cache is rebuilt whenever a file is added, removed or modified. Unreadable images fail the load,
      all named, unless ``skip_bad_images=True`` leaves them out.
    - ``"npz:FILE"``: arrays ``images`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3},
      ``labels`` ``(N,)`` integers >= 0 (without ``classes``, values other than 0..K-1 become classes named
      by their values), optional ``images_test``/``labels_test`` (the test split; otherwise a stratified
      split) and optional ``classes`` (strings).

    Class names default to ``"0"``, ``"1"``, ... up to the largest label in either split. A stratified
    split uses scikit-learn's ``train_test_split(stratify=labels, test_size=test_fraction,
    random_state=seed)`` and keeps each split in the original order. If ``image_size`` is given every
    split of every kind is resized so its shorter side is ``image_size`` (bilinear, antialiased, on float,
    rounded back to uint8) and centre-cropped to ``image_size x image_size``; without it, non-square
    images are centre-cropped to their shorter side. A split that would not fit in the machine's
    physical memory at that size (``N x C x S x S`` bytes) is refused before it is decoded or resized.

    Args:
        spec: ``"digits"`` or ``"KIND:PATH"`` with ``KIND`` in :data:`DATASET_KINDS`.
        split: ``"train"`` or ``"test"``.
        image_size: output side length in pixels, or ``None`` to keep the stored size.
        download: allow fetching CIFAR tarballs from the official site (only ``cifar10``/``cifar100``).
        seed: random state of stratified splits.
        test_fraction: fraction of each class held out for test in stratified splits, in ``(0, 1)``.
        skip_bad_images: leave corrupt or truncated image files out, with a warning giving their count,
            instead of failing (``folder`` datasets; the other kinds have no per-image files).

    Returns:
        The split: ``images (N, C, S, S)`` uint8, ``labels (N,)`` int64.

    Raises:
        DatasetError: unknown kind, missing path, unreadable or malformed files, empty data, bad arguments,
            an ``image_size`` too large for memory.
    """
    request = _check_request(split, image_size, download, seed, test_fraction, skip_bad_images)
    kind, path = _parse_spec(spec)
    reader = _READERS[kind]
    if download and not reader.downloads:
        able = " and ".join(k for k, r in _READERS.items() if r.downloads)
        raise DatasetError(f"download=True is only supported for {able}, not {kind!r} (spec {spec!r})")
    if reader.path_must_exist:
        path = _existing(path, spec)
    dataset = reader.read(path, request)
    if len(dataset) == 0:
        raise DatasetError(f"the {split} split of {spec!r} is empty")
    if image_size is not None:  # before the resize allocates the images at that size
        check_fits_in_memory(len(dataset), dataset.channels, image_size, f"the {split} split of {spec!r}")
    images = _fit_square(dataset.images, image_size, spec)
    if images is not dataset.images:
        dataset = ImageDataset(images, dataset.labels, dataset.classes, dataset.name)
    side = dataset.image_size
    logger.info("loaded %s split of %s: %d images, %d classes, %d channels, %dx%d",
                split, spec, len(dataset), dataset.num_classes, dataset.channels, side, side)
    return dataset


def _check_request(
    split: str, image_size: int | None, download: bool, seed: int, test_fraction: float, skip_bad_images: bool
) -> ReadRequest:
    """Validate :func:`load_dataset`'s arguments (everything but the spec) into a :class:`ReadRequest`."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size is not None and (
        isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1
    ):
        raise DatasetError(f"image_size must be a positive int or None, got {image_size!r}")
    if not _is_number(test_fraction) or not 0 < test_fraction < 1:
        raise DatasetError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetError(f"seed must be an int, got {seed!r}")
    if not isinstance(skip_bad_images, (bool, np.bool_)):
        raise DatasetError(f"skip_bad_images must be a bool, got {skip_bad_images!r}")
    return ReadRequest(split, image_size, download, int(seed), test_fraction, bool(skip_bad_images))


def _parse_spec(spec: str) -> tuple[str, Path | None]:
    """``"KIND"`` or ``"KIND:PATH"`` -> ``(kind, path or None)``; the kind is checked against the table."""
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(
            f"dataset spec must be a non-empty string like 'digits' or 'cifar10:DIR', got {spec!r}"
        )
    kind, _, path = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in _READERS:
        raise DatasetError(
            f"unknown dataset kind {kind!r} in spec {spec!r}; expected one of {', '.join(DATASET_KINDS)}"
        )
    pathless = _READERS[kind].pathless
    if pathless is not None:
        if path:
            raise DatasetError(f"dataset spec {spec!r}: {kind!r} {pathless} and takes no path")
        return kind, None
    if not path.strip():
        raise DatasetError(f"dataset spec {spec!r} needs a path: '{kind}:PATH'")
    return kind, Path(path.strip()).expanduser()


def _existing(path: Path | None, spec: str) -> Path:
    if path is None or not path.exists():
        raise DatasetError(f"dataset spec {spec!r}: path {path} does not exist")
    return path
