"""The in-memory dataset every reader returns, its error type, and the checks and helpers readers share.

The datasets SupCon is trained on here (MNIST, CIFAR-10/100, the 8x8 scikit-learn digits, small image
folders) fit in memory as ``uint8``: CIFAR-10 is 150 MB. Each reader returns an :class:`ImageDataset`
holding ``images: (N, C, H, W) uint8`` and ``labels: (N,) int64``; the training loop moves the tensors to
the device and augments there, so no per-sample Python runs during training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: The two splits every reader serves.
SPLITS: tuple[str, ...] = ("train", "test")

# Elements per float chunk when resizing or reducing, so huge uint8 arrays are never copied to float at once.
_CHUNK_ELEMENTS = 1 << 22


class DatasetError(ValueError):
    """A dataset spec, path or file that cannot be loaded as asked; the message says what and where."""


@dataclass
class ImageDataset:
    """One split of an image-classification dataset, in memory.

    Attributes:
        images: ``(N, C, H, W)`` uint8, contiguous. Datasets from :func:`supcon.data.load_dataset` are
            square (``H == W``).
        labels: ``(N,)`` int64, each in ``[0, len(classes))``.
        classes: class names; ``classes[k]`` names label ``k``.
        name: short name of the source (``"cifar10"``, ``"digits"``, a folder or file stem).
        paths: for datasets read from image files (``folder:DIR``), each image's file path relative to
            the dataset root (``"/"``-separated), ``paths[i]`` for ``images[i]``; ``None`` otherwise.

    Raises:
        DatasetError: wrong dtype or rank, mismatched lengths, or labels out of range.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str
    paths: list[str] | None = None

    def __post_init__(self) -> None:
        _check_tensor(self.images, "images", torch.uint8, 4, "(N, C, H, W)")
        _check_tensor(self.labels, "labels", torch.int64, 1, "(N,)")
        if self.labels.shape[0] != self.images.shape[0]:
            raise DatasetError(
                f"labels has {self.labels.shape[0]} entries, images has {self.images.shape[0]}"
            )
        self.classes = [str(c) for c in self.classes]
        if self.paths is not None:
            self.paths = [str(p) for p in self.paths]
            if len(self.paths) != self.images.shape[0]:
                raise DatasetError(f"paths has {len(self.paths)} entries, images has {self.images.shape[0]}")
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
        """Image height ``H`` (equal to the width for datasets from :func:`supcon.data.load_dataset`)."""
        return int(self.images.shape[2])


@dataclass(frozen=True)
class ReadRequest:
    """What :func:`supcon.data.load_dataset` asks of a reader, already validated.

    Attributes:
        split: ``"train"`` or ``"test"``.
        image_size: output side length the caller asked for, or ``None`` (readers that decode images
            themselves use it; every split is fitted square afterwards anyway).
        download: whether fetching missing files is allowed (only readers that can download read it).
        seed: random state of stratified splits.
        test_fraction: fraction of each class held out for test in stratified splits, in ``(0, 1)``.
        skip_bad_images: leave unreadable image files out (with a warning) instead of failing; read by
            readers that decode image files one by one (folder).
    """

    split: str
    image_size: int | None
    download: bool
    seed: int
    test_fraction: float
    skip_bad_images: bool = False


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


def _default_classes(*label_arrays: np.ndarray) -> list[str]:
    high = max((int(a.max()) for a in label_arrays if a.size), default=-1)
    return [str(k) for k in range(high + 1)]


def _decode_names(names: object) -> list[str]:
    """Class names from a pickle or npz (bytes decoded as UTF-8, anything else through ``str``)."""
    return [c.decode("utf-8") if isinstance(c, bytes) else str(c) for c in names]


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


def _make_dataset(images: np.ndarray, labels: np.ndarray, classes: list[str], name: str,
                  paths: list[str] | None = None) -> ImageDataset:
    """Wrap numpy ``images (N, C, H, W)`` uint8 and integer ``labels (N,)`` (copied to own memory)."""
    # np.require copies only when needed (non-contiguous, read-only or another dtype).
    return ImageDataset(
        torch.from_numpy(np.require(images, np.uint8, ["C", "W"])),
        torch.from_numpy(np.require(labels, np.int64, ["C", "W"])),
        classes,
        name,
        paths,
    )
