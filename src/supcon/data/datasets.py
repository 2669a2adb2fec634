"""Dataset readers: every supported on-disk format loaded into memory as uint8 tensors.

The datasets SupCon is trained on here (MNIST, CIFAR-10/100, the 8x8 scikit-learn digits, small image
folders) fit in memory as ``uint8``: CIFAR-10 is 150 MB. Each reader returns an :class:`ImageDataset`
holding ``images: (N, C, H, W) uint8`` and ``labels: (N,) int64``; the training loop moves the tensors to
the device and augments there, so no per-sample Python runs during training.

A dataset is named by a *spec* string, ``KIND`` or ``KIND:PATH`` (see :data:`DATASET_KINDS` and
:func:`load_dataset`). Nothing is ever downloaded unless ``download=True`` is passed explicitly.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import logging
import math
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: The dataset kinds a spec may name: ``"digits"`` or ``"KIND:PATH"`` for the others.
DATASET_KINDS: tuple[str, ...] = ("digits", "idx", "cifar10", "cifar100", "folder", "npz")

#: The two splits every reader serves.
SPLITS: tuple[str, ...] = ("train", "test")

_IDX_IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, cols)
_IDX_LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)

# Pillow modes that hold one grey channel; a folder made only of these loads as 1-channel "L".
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

# Elements per float chunk when resizing or reducing, so huge uint8 arrays are never copied to float at once.
_CHUNK_ELEMENTS = 1 << 22


class DatasetError(ValueError):
    """A dataset spec, path or file that cannot be loaded as asked; the message says what and where."""


@dataclass
class ImageDataset:
    """One split of an image-classification dataset, in memory.

    Attributes:
        images: ``(N, C, H, W)`` uint8, contiguous. Datasets from :func:`load_dataset` are square
            (``H == W``).
        labels: ``(N,)`` int64, each in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` names label ``k``.
        name: short name of the source (``"cifar10"``, ``"digits"``, a folder or file stem).

    Raises:
        DatasetError: wrong dtype or rank, mismatched lengths, or labels out of range.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        _check_tensor(self.images, "images", torch.uint8, 4, "(N, C, H, W)")
        _check_tensor(self.labels, "labels", torch.int64, 1, "(N,)")
        if self.labels.shape[0] != self.images.shape[0]:
            raise DatasetError(
                f"labels has {self.labels.shape[0]} entries, images has {self.images.shape[0]}"
            )
        self.classes = [str(c) for c in self.classes]
        if self.labels.numel() > 0:
            low, high = int(self.labels.min()), int(self.labels.max())
            if low < 0 or high >= len(self.classes):
                bad = low if low < 0 else high
                raise DatasetError(
                    f"labels out of range: found {bad}, dataset has {len(self.classes)} classes"
                )
        self.images = self.images.contiguous()

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(classes)``."""
        return len(self.classes)

    @property
    def channels(self) -> int:
        """Channels per image, ``C``."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Image height ``H`` (equal to the width for datasets from :func:`load_dataset`)."""
        return int(self.images.shape[2])


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------


def describe_split_rules() -> str:
    """A short human-readable description of how each dataset kind is split into train and test.

    Returns:
        Several lines of plain text, suitable for a README or ``--help``.
    """
    return (
        "Train/test splits:\n"
        "  digits       stratified split of the 1,797 scikit-learn digits (test_fraction, seed).\n"
        "  idx:DIR      train-* + t10k-* IDX pairs are the train and test splits; a directory with a\n"
        "               single images/labels pair (e.g. only the MNIST test set) is split stratified.\n"
        "  cifar10:DIR  the official data_batch_1..5 / test_batch; cifar100:DIR the official train / test.\n"
        "  folder:DIR   DIR/train + DIR/test (or DIR/val) are the splits; otherwise DIR/<class>/ images\n"
        "               are split stratified.\n"
        "  npz:FILE     images/labels + images_test/labels_test if present; otherwise stratified split.\n"
        "A stratified split keeps test_fraction of every class for test (scikit-learn train_test_split,\n"
        "random_state=seed); the same seed always gives the same, disjoint splits."
    )


def load_dataset(
    spec: str,
    split: str,
    *,
    image_size: int | None = None,
    download: bool = False,
    seed: int = 0,
    test_fraction: float = 0.2,
) -> ImageDataset:
    """Load one split of a dataset into memory as uint8 tensors.

    Spec forms (``KIND:PATH``; ``~`` is expanded):

    - ``"digits"``: scikit-learn's 8x8 digits (values 0..16 scaled to 0..255), 1 channel, 10 classes.
    - ``"idx:DIR"``: MNIST-format IDX files, gzip-compressed or raw. ``DIR`` holds
      ``train-images-idx3-ubyte[.gz]``/``train-labels-idx1-ubyte[.gz]`` and/or the ``t10k-`` pair; any
      names matching ``*images*idx3*``/``*labels*idx1*`` are accepted (names starting with ``train``
      are the train pair, ``t10k`` or ``test`` the test pair; an uncompressed copy is preferred over its
      ``.gz``). With both pairs they are the two splits; with exactly one pair it is split stratified.
    - ``"cifar10:DIR"`` / ``"cifar100:DIR"``: the official python pickles; ``DIR`` is the extracted
      ``cifar-10-batches-py``/``cifar-100-python`` folder or its parent. CIFAR-100 uses fine labels.
      ``download=True`` fetches the official tarball into ``DIR`` (md5 checked) if the files are missing.
    - ``"folder:DIR"``: ``DIR/<class>/<image files>``. If ``DIR/train`` and ``DIR/test`` (else
      ``DIR/val``) exist they are the splits (classes come from train; a test class absent from train is an
      error); if ``DIR`` holds only ``train`` it is split stratified; otherwise ``DIR``'s subfolders are
      the classes and are split stratified. Files whose extension Pillow knows are images and must be
      readable; hidden files and files with any other extension are ignored. Images load as RGB, or as
      one-channel L when every image of the dataset is grayscale. Size rule: every image's shorter side
      is resized (bilinear) to ``S`` and the centre ``S x S`` is cropped, where ``S`` is ``image_size`` if
      given, else the most common shorter side across the whole dataset (ties: the larger); when that
      changes any image a warning states ``S``.
    - ``"npz:FILE"``: arrays ``images`` uint8 ``(N, H, W)`` or ``(N, H, W, C)`` with ``C`` in {1, 3},
      ``labels`` ``(N,)`` integers, optional ``images_test``/``labels_test`` (the test split; otherwise a
      stratified split) and optional ``classes`` (strings).

    Class names default to ``"0"``, ``"1"``, ... up to the largest label in either split. A stratified
    split uses scikit-learn's ``train_test_split(stratify=labels, test_size=test_fraction,
    random_state=seed)`` and keeps each split in the original order. If ``image_size`` is given every
    split of every kind is resized so its shorter side is ``image_size`` (bilinear, antialiased, on float,
    rounded back to uint8) and centre-cropped to ``image_size x image_size``; without it, non-square
    images are centre-cropped to their shorter side.

    Args:
        spec: ``"digits"`` or ``"KIND:PATH"`` with ``KIND`` in :data:`DATASET_KINDS`.
        split: ``"train"`` or ``"test"``.
        image_size: output side length in pixels, or ``None`` to keep the stored size.
        download: allow fetching CIFAR tarballs from the official site (only ``cifar10``/``cifar100``).
        seed: random state of stratified splits.
        test_fraction: fraction of each class held out for test in stratified splits, in ``(0, 1)``.

    Returns:
        The split: ``images (N, C, S, S)`` uint8, ``labels (N,)`` int64.

    Raises:
        DatasetError: unknown kind, missing path, unreadable or malformed files, empty data, bad arguments.
    """
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
    kind, path = _parse_spec(spec)
    if download and kind not in ("cifar10", "cifar100"):
        raise DatasetError(
            f"download=True is only supported for cifar10 and cifar100, not {kind!r} (spec {spec!r})"
        )

    seed = int(seed)
    if kind == "digits":
        dataset = _load_digits(split, seed, test_fraction)
    elif kind == "idx":
        dataset = _load_idx(_existing(path, spec), split, seed, test_fraction)
    elif kind in ("cifar10", "cifar100"):
        dataset = _load_cifar(kind, path, split, download)
    elif kind == "folder":
        dataset = _load_folder(_existing(path, spec), split, image_size, seed, test_fraction)
    else:
        dataset = _load_npz(_existing(path, spec), split, image_size, seed, test_fraction)

    if len(dataset) == 0:
        raise DatasetError(f"the {split} split of {spec!r} is empty")
    images = _fit_square(dataset.images, image_size, spec)
    if images is not dataset.images:
        dataset = ImageDataset(images, dataset.labels, dataset.classes, dataset.name)
    logger.info(
        "loaded %s split of %s: %d images, %d classes, %d channels, %dx%d",
        split,
        spec,
        len(dataset),
        dataset.num_classes,
        dataset.channels,
        dataset.image_size,
        dataset.image_size,
    )
    return dataset


def normalization_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images scaled to ``[0, 1]``.

    Compute them on the training split. Sums are accumulated exactly in int64, chunk by chunk, so no
    float copy of the whole array is made; the standard deviation is the population one (``ddof=0``).

    Args:
        images: ``(N, C, H, W)`` uint8, ``N >= 1``.

    Returns:
        ``(mean, std)``, each a tuple of ``C`` floats.

    Raises:
        DatasetError: not a non-empty 4-D uint8 tensor.
    """
    _check_tensor(images, "images", torch.uint8, 4, "(N, C, H, W)")
    n, c, h, w = images.shape
    if n * h * w == 0:
        raise DatasetError(f"images must be non-empty, got shape {tuple(images.shape)}")
    total = torch.zeros(c, dtype=torch.int64)
    total_sq = torch.zeros(c, dtype=torch.int64)
    chunk = max(1, _CHUNK_ELEMENTS // (c * h * w))
    for start in range(0, n, chunk):
        block = images[start : start + chunk].to(torch.int64)
        total += block.sum(dim=(0, 2, 3))
        total_sq += (block * block).sum(dim=(0, 2, 3))
    count = n * h * w
    means, stds = [], []
    for s1, s2 in zip(total.tolist(), total_sq.tolist()):
        # Exact integer arithmetic: var * (255 * count)^2 = count * s2 - s1^2.
        means.append(s1 / (count * 255))
        stds.append(math.sqrt(count * s2 - s1 * s1) / (count * 255))
    return tuple(means), tuple(stds)


def label_fraction_subset(dataset: ImageDataset, fraction: float, seed: int = 0) -> ImageDataset:
    """Class-balanced subset keeping ``fraction`` of every class (the semi-supervised label budget).

    Class ``k`` with ``n_k > 0`` samples keeps ``max(1, floor(fraction * n_k + 0.5))`` of them, drawn
    without replacement by a ``torch.Generator`` seeded with ``seed``; kept samples stay in their
    original order. ``fraction == 1`` keeps everything.

    Args:
        dataset: the split to subsample, ``images (N, C, H, W)``, ``labels (N,)``.
        fraction: share of each class to keep, in ``(0, 1]``.
        seed: seed of the draw; the same seed gives the same subset.

    Returns:
        A new :class:`ImageDataset` with ``images (M, C, H, W)``, ``labels (M,)``, same classes and name.

    Raises:
        DatasetError: ``fraction`` outside ``(0, 1]``.
    """
    if not _is_number(fraction) or not 0 < fraction <= 1:
        raise DatasetError(f"fraction must be a number in (0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(int(seed))
    keep = []
    for label in range(dataset.num_classes):
        members = torch.nonzero(dataset.labels == label, as_tuple=False).flatten()
        if members.numel() == 0:
            continue
        count = max(1, int(math.floor(fraction * members.numel() + 0.5)))
        order = torch.randperm(members.numel(), generator=generator)
        keep.append(members[order[:count]])
    index = torch.sort(torch.cat(keep)).values if keep else torch.zeros(0, dtype=torch.int64)
    return ImageDataset(dataset.images[index], dataset.labels[index], list(dataset.classes), dataset.name)


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_tensor(tensor: object, name: str, dtype: torch.dtype, ndim: int, shape: str) -> None:
    if isinstance(tensor, torch.Tensor) and tensor.dtype == dtype and tensor.dim() == ndim:
        return
    if isinstance(tensor, torch.Tensor):
        got = f"{tensor.dtype} tensor of shape {tuple(tensor.shape)}"
    else:
        got = type(tensor).__name__
    dtype_name = str(dtype).removeprefix("torch.")
    article = "an" if dtype_name.startswith("int") else "a"
    raise DatasetError(f"{name} must be {article} {dtype_name} tensor of shape {shape}, got {got}")


def _parse_spec(spec: str) -> tuple[str, Path | None]:
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(
            f"dataset spec must be a non-empty string like 'digits' or 'cifar10:DIR', got {spec!r}"
        )
    kind, _, path = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in DATASET_KINDS:
        raise DatasetError(
            f"unknown dataset kind {kind!r} in spec {spec!r}; expected one of {', '.join(DATASET_KINDS)}"
        )
    if kind == "digits":
        if path:
            raise DatasetError(f"dataset spec {spec!r}: 'digits' ships with scikit-learn and takes no path")
        return kind, None
    if not path.strip():
        raise DatasetError(f"dataset spec {spec!r} needs a path: '{kind}:PATH'")
    return kind, Path(path.strip()).expanduser()


def _existing(path: Path | None, spec: str) -> Path:
    if path is None or not path.exists():
        raise DatasetError(f"dataset spec {spec!r}: path {path} does not exist")
    return path


def _stratified_indices(
    labels: np.ndarray, split: str, seed: int, test_fraction: float, source: str
) -> np.ndarray:
    """Indices (sorted) of ``split`` in a stratified train/test split of ``labels: (N,)``."""
    from sklearn.model_selection import train_test_split

    if len(labels) == 0:
        raise DatasetError(f"{source} holds no samples")
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
        )
    except ValueError as err:
        raise DatasetError(
            f"cannot make a stratified split of {source} with test_fraction={test_fraction} "
            f"({len(labels)} samples, {len(np.unique(labels))} classes): {err}"
        ) from err
    return np.sort(train_idx if split == "train" else test_idx)


def _default_classes(*label_arrays: np.ndarray) -> list[str]:
    high = max((int(a.max()) for a in label_arrays if a.size), default=-1)
    return [str(k) for k in range(high + 1)]


def _fit_square(images: torch.Tensor, image_size: int | None, source: str) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` uint8 so the shorter side is ``image_size`` and centre-crop it square.

    With ``image_size=None`` only non-square images are changed: centre-cropped to the shorter side.
    Returns the input object itself when nothing changes.
    """
    n, c, h, w = images.shape
    size = image_size if image_size is not None else min(h, w)
    if h == size and w == size:
        return images
    if image_size is None:
        logger.warning("%s: images are %dx%d (HxW), centre-cropping to %dx%d", source, h, w, size, size)
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    out = torch.empty((n, c, size, size), dtype=torch.uint8)
    chunk = max(1, _CHUNK_ELEMENTS // (c * max(h * w, new_h * new_w)))
    for start in range(0, n, chunk):
        block = images[start : start + chunk]
        if (new_h, new_w) != (h, w):
            block = F.interpolate(
                block.float(), size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
            )
            block = block.round_().clamp_(0, 255).to(torch.uint8)
        out[start : start + chunk] = block[:, :, top : top + size, left : left + size]
    return out


def _make_dataset(images: np.ndarray, labels: np.ndarray, classes: list[str], name: str) -> ImageDataset:
    """Wrap numpy ``images (N, C, H, W)`` uint8 and integer ``labels (N,)`` (copied to own memory)."""
    # np.require copies only when needed (non-contiguous, read-only or another dtype).
    return ImageDataset(
        torch.from_numpy(np.require(images, np.uint8, ["C", "W"])),
        torch.from_numpy(np.require(labels, np.int64, ["C", "W"])),
        classes,
        name,
    )


# --------------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------------


def _load_digits(split: str, seed: int, test_fraction: float) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = np.asarray(bunch.target, dtype=np.int64)
    index = _stratified_indices(labels, split, seed, test_fraction, "digits")
    return _make_dataset(images[index], labels[index], [str(k) for k in range(10)], "digits")


# --------------------------------------------------------------------------------------------------
# IDX (MNIST format)
# --------------------------------------------------------------------------------------------------


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


def _load_idx(root: Path, split: str, seed: int, test_fraction: float) -> ImageDataset:
    if not root.is_dir():
        raise DatasetError(f"idx: {root} is not a directory of IDX files")
    images = _idx_candidates(root, "images", "idx3")
    labels = _idx_candidates(root, "labels", "idx1")
    pairs = {}
    for role in SPLITS:
        role_images = [p for p in images if _idx_role(p) == role]
        role_labels = [p for p in labels if _idx_role(p) == role]
        if len(role_images) == 1 and len(role_labels) == 1:
            pairs[role] = (role_images[0], role_labels[0])
    if len(pairs) == 2:
        all_labels = {role: _read_idx(lab, _IDX_LABELS_MAGIC) for role, (_, lab) in pairs.items()}
        image_path, label_path = pairs[split]
        split_images = _read_idx(image_path, _IDX_IMAGES_MAGIC)
        split_labels = all_labels[split]
        _check_idx_counts(image_path, split_images, label_path, split_labels)
        classes = _default_classes(*all_labels.values())
        return _make_dataset(split_images[:, None], split_labels, classes, root.name)
    if len(images) == 1 and len(labels) == 1:
        all_images = _read_idx(images[0], _IDX_IMAGES_MAGIC)
        all_labels = _read_idx(labels[0], _IDX_LABELS_MAGIC)
        _check_idx_counts(images[0], all_images, labels[0], all_labels)
        index = _stratified_indices(all_labels, split, seed, test_fraction, str(root))
        classes = _default_classes(all_labels)
        return _make_dataset(all_images[index][:, None], all_labels[index], classes, root.name)
    raise DatasetError(
        f"idx: {root} must hold train-images-idx3-ubyte[.gz] + train-labels-idx1-ubyte[.gz] and "
        f"t10k-images-idx3-ubyte[.gz] + t10k-labels-idx1-ubyte[.gz], or exactly one *images*idx3* / "
        f"*labels*idx1* pair; found images files {[p.name for p in images]} and labels files "
        f"{[p.name for p in labels]}"
    )


def _check_idx_counts(image_path: Path, images: np.ndarray, label_path: Path, labels: np.ndarray) -> None:
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"IDX files disagree: {image_path} has {images.shape[0]} images, "
            f"{label_path} has {labels.shape[0]} labels"
        )


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python pickle format)
# --------------------------------------------------------------------------------------------------


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
        partial = archive.with_name(archive.name + ".part")
        logger.info("downloading %s to %s", fmt.url, archive)
        digest = hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(fmt.url, timeout=60) as response, open(partial, "wb") as out:
                while block := response.read(1 << 20):
                    digest.update(block)
                    out.write(block)
        except (urllib.error.URLError, OSError) as err:
            partial.unlink(missing_ok=True)
            raise DatasetError(f"download of {fmt.url} failed ({err}); no internet access? {manual}") from err
        if digest.hexdigest() != fmt.md5:
            partial.unlink(missing_ok=True)
            raise DatasetError(
                f"download of {fmt.url} is corrupt: md5 {digest.hexdigest()}, expected {fmt.md5}. {manual}"
            )
        os.replace(partial, archive)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(root, filter="data")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"cannot extract {archive}: {err}. {manual}") from err


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _load_cifar(kind: str, path: Path | None, split: str, download: bool) -> ImageDataset:
    fmt = _CIFAR_FORMATS[kind]
    root = _cifar_root(kind, path, download)
    files = fmt.train_files if split == "train" else fmt.test_files
    for name in (*files, fmt.meta_file):
        if not (root / name).is_file():
            raise DatasetError(f"{kind}: {root / name} is missing")
    all_images, all_labels = [], []
    for name in files:
        batch = _read_cifar_pickle(root / name)
        for key in ("data", fmt.label_key):
            if key not in batch:
                raise DatasetError(f"CIFAR pickle {root / name} has no {key!r} entry; found {sorted(batch)}")
        data = np.asarray(batch["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(
                f"CIFAR pickle {root / name}: 'data' must be uint8 of shape (N, 3072), "
                f"got {data.dtype} of shape {data.shape}"
            )
        labels = np.asarray(batch[fmt.label_key], dtype=np.int64).reshape(-1)
        if labels.shape[0] != data.shape[0]:
            raise DatasetError(
                f"CIFAR pickle {root / name}: {data.shape[0]} images but {labels.shape[0]} {fmt.label_key}"
            )
        all_images.append(data.reshape(-1, 3, 32, 32))
        all_labels.append(labels)
    meta = _read_cifar_pickle(root / fmt.meta_file)
    if fmt.names_key not in meta:
        raise DatasetError(
            f"CIFAR meta file {root / fmt.meta_file} has no {fmt.names_key!r}; found {sorted(meta)}"
        )
    classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in meta[fmt.names_key]]
    return _make_dataset(np.concatenate(all_images), np.concatenate(all_labels), classes, kind)


# --------------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------------


def _image_extensions() -> frozenset[str]:
    from PIL import Image

    Image.init()
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _visible_subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_samples(split_root: Path) -> tuple[list[str], list[tuple[Path, str]]]:
    """Class names (sorted subfolders) and ``(file, class name)`` pairs of a ``split_root/<class>/`` tree."""
    class_dirs = _visible_subdirs(split_root)
    if not class_dirs:
        raise DatasetError(
            f"folder: {split_root} has no class folders (expected {split_root}/<class>/<images>)"
        )
    extensions = _image_extensions()
    samples = []
    for class_dir in class_dirs:
        files = [
            p
            for p in sorted(class_dir.rglob("*"))
            if p.is_file()
            and p.suffix.lower() in extensions
            and not any(part.startswith(".") for part in p.relative_to(class_dir).parts)
        ]
        if not files:
            raise DatasetError(f"folder: class folder {class_dir} holds no image files")
        samples.extend((p, class_dir.name) for p in files)
    return [d.name for d in class_dirs], samples


def _image_header(path: Path) -> tuple[tuple[int, int], str]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except Exception as err:  # Pillow's decoders raise many unrelated types on corrupt files
        raise DatasetError(f"cannot read image {path}: {err}") from err


def _read_image(path: Path, mode: str, side: int) -> np.ndarray:
    """Decode ``path``, convert to ``mode``, resize the shorter side to ``side``, centre-crop; (H, W[, C])."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            width, height = image.size
            if (width, height) != (side, side):
                scale = side / min(width, height)
                new_w, new_h = max(side, round(width * scale)), max(side, round(height * scale))
                if (new_w, new_h) != (width, height):
                    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
                left, top = (new_w - side) // 2, (new_h - side) // 2
                image = image.crop((left, top, left + side, top + side))
            return np.asarray(image, dtype=np.uint8)
    except Exception as err:  # Pillow's decoders raise many unrelated types on corrupt files
        raise DatasetError(f"cannot read image {path}: {err}") from err


def _load_folder(
    root: Path, split: str, image_size: int | None, seed: int, test_fraction: float
) -> ImageDataset:
    if not root.is_dir():
        raise DatasetError(f"folder: {root} is not a directory")
    train_dir = root / "train"
    test_dir = next((root / n for n in ("test", "val") if (root / n).is_dir()), None)
    if train_dir.is_dir() and test_dir is not None:
        classes, train_samples = _folder_samples(train_dir)
        test_classes, test_samples = _folder_samples(test_dir)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DatasetError(
                f"folder: test class folder(s) {unknown} in {test_dir} have no counterpart in {train_dir} "
                f"(train classes: {classes})"
            )
        every_sample = train_samples + test_samples
        chosen = train_samples if split == "train" else test_samples
    else:
        class_root = train_dir if [d.name for d in _visible_subdirs(root)] == ["train"] else root
        classes, every_sample = _folder_samples(class_root)
        class_index = {name: k for k, name in enumerate(classes)}
        all_labels = np.array([class_index[c] for _, c in every_sample], dtype=np.int64)
        index = _stratified_indices(all_labels, split, seed, test_fraction, str(class_root))
        chosen = [every_sample[i] for i in index]

    # One pass over the headers of the whole dataset (both splits) fixes mode and size for both.
    headers = [_image_header(path) for path, _ in every_sample]
    gray = all(mode in _GRAY_MODES for _, mode in headers)
    mode = "L" if gray else "RGB"
    if image_size is not None:
        side = image_size
    else:
        counts = collections.Counter(min(size) for size, _ in headers)
        side = max(counts, key=lambda s: (counts[s], s))
        if any(size != (side, side) for size, _ in headers):
            logger.warning(
                "folder %s: images differ in size or are not square; resizing every image's shorter side to "
                "%d and centre-cropping to %dx%d (the most common shorter side; pass image_size to choose)",
                root, side, side, side,
            )

    class_index = {name: k for k, name in enumerate(classes)}
    channels = 1 if gray else 3
    images = np.empty((len(chosen), side, side, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(chosen):
        pixels = _read_image(path, mode, side)
        images[i] = pixels.reshape(side, side, channels)
    labels = np.array([class_index[c] for _, c in chosen], dtype=np.int64)
    return _make_dataset(images.transpose(0, 3, 1, 2), labels, classes, root.name)


# --------------------------------------------------------------------------------------------------
# npz
# --------------------------------------------------------------------------------------------------


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
    if not np.issubdtype(array.dtype, np.integer):
        raise DatasetError(f"npz {path}: {key!r} must hold integers, got {array.dtype}")
    if array.ndim != 1 or array.shape[0] != count:
        raise DatasetError(
            f"npz {path}: {key!r} must have shape ({count},) to match the images, got {array.shape}"
        )
    return array.astype(np.int64)


def _load_npz(
    path: Path, split: str, image_size: int | None, seed: int, test_fraction: float
) -> ImageDataset:
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
        images = _npz_images(_npz_array(archive, "images", path), "images", path)
        labels = _npz_labels(_npz_array(archive, "labels", path), "labels", images.shape[0], path)
        if all(has_test):
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
        else:
            test_images, test_labels = None, None
        classes_array = _npz_array(archive, "classes", path) if "classes" in keys else None

    label_sets = [labels] if test_labels is None else [labels, test_labels]
    if classes_array is not None:
        if classes_array.dtype.kind not in "US" or classes_array.ndim != 1:
            raise DatasetError(
                f"npz {path}: 'classes' must be a 1-D array of strings, got {classes_array.dtype} "
                f"of shape {classes_array.shape}"
            )
        classes = [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in classes_array.tolist()]
        high = max(int(a.max()) for a in label_sets if a.size) if any(a.size for a in label_sets) else -1
        if high >= len(classes):
            raise DatasetError(
                f"npz {path}: labels out of range: found {high}, 'classes' names {len(classes)}"
            )
    else:
        classes = _default_classes(*label_sets)

    if test_images is not None:
        chosen_images, chosen_labels = (images, labels) if split == "train" else (test_images, test_labels)
    else:
        index = _stratified_indices(labels, split, seed, test_fraction, str(path))
        chosen_images, chosen_labels = images[index], labels[index]
    return _make_dataset(chosen_images, chosen_labels, classes, path.stem)
