"""Reader for image class folders: spec ``folder:DIR`` with ``DIR/<class>/<image files>``.

If ``DIR/train`` and ``DIR/test`` (else ``DIR/val``) exist they are the splits (classes come from train; a
test class absent from train is an error); if ``DIR`` holds only ``train`` it is split stratified;
otherwise ``DIR``'s subfolders are the classes and are split stratified. Files whose extension Pillow
knows are images and must be readable; hidden files and files with any other extension are ignored.
Images load as RGB, or as one-channel L when every image of the dataset is grayscale. Size rule: every
image's shorter side is resized (bilinear) to ``S`` and the centre ``S x S`` is cropped, where ``S`` is
``image_size`` if given, else the most common shorter side across the whole dataset (ties: the larger);
when that changes any image a warning states ``S``.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from supcon.data.base import DatasetError, ImageDataset, ReadRequest, _make_dataset
from supcon.data.stratified import _stratified_indices

logger = logging.getLogger(__name__)

# Pillow modes that hold one grey channel; a folder made only of these loads as 1-channel "L".
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})

#: ``(image file, class name)``: one sample of a folder dataset.
_Sample = tuple[Path, str]


def read_folder(root: Path, request: ReadRequest) -> ImageDataset:
    """One split of the class folders under ``root``, decoded to ``(N, C, S, S)`` uint8."""
    if not root.is_dir():
        raise DatasetError(f"folder: {root} is not a directory")
    classes, every_sample, chosen = _split_samples(root, request)
    # One pass over the headers of the whole dataset (both splits) fixes mode and size for both.
    gray, side = _mode_and_side(root, every_sample, request.image_size)
    images = _read_images(chosen, "L" if gray else "RGB", side, 1 if gray else 3)
    class_index = {name: k for k, name in enumerate(classes)}
    labels = np.array([class_index[c] for _, c in chosen], dtype=np.int64)
    return _make_dataset(images.transpose(0, 3, 1, 2), labels, classes, root.name)


def _split_samples(root: Path, request: ReadRequest) -> tuple[list[str], list[_Sample], list[_Sample]]:
    """Class names, every sample of the dataset (both splits) and the samples of ``request.split``."""
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
        chosen = train_samples if request.split == "train" else test_samples
        return classes, train_samples + test_samples, chosen
    class_root = train_dir if [d.name for d in _visible_subdirs(root)] == ["train"] else root
    classes, every_sample = _folder_samples(class_root)
    class_index = {name: k for k, name in enumerate(classes)}
    all_labels = np.array([class_index[c] for _, c in every_sample], dtype=np.int64)
    index = _stratified_indices(
        all_labels, request.split, request.seed, request.test_fraction, str(class_root)
    )
    return classes, every_sample, [every_sample[i] for i in index]


def _mode_and_side(root: Path, samples: list[_Sample], image_size: int | None) -> tuple[bool, int]:
    """Whether every image is grayscale, and the output side ``S`` (see the module's size rule)."""
    headers = [_image_header(path) for path, _ in samples]
    gray = all(mode in _GRAY_MODES for _, mode in headers)
    if image_size is not None:
        return gray, image_size
    counts = collections.Counter(min(size) for size, _ in headers)
    side = max(counts, key=lambda s: (counts[s], s))
    if any(size != (side, side) for size, _ in headers):
        logger.warning(
            "folder %s: images differ in size or are not square; resizing every image's shorter side to "
            "%d and centre-cropping to %dx%d (the most common shorter side; pass image_size to choose)",
            root, side, side, side,
        )
    return gray, side


def _read_images(samples: list[_Sample], mode: str, side: int, channels: int) -> np.ndarray:
    """Decode every sample to ``(N, side, side, channels)`` uint8."""
    images = np.empty((len(samples), side, side, channels), dtype=np.uint8)
    for i, (path, _) in enumerate(samples):
        pixels = _read_image(path, mode, side)
        images[i] = pixels.reshape(side, side, channels)
    return images


def _image_extensions() -> frozenset[str]:
    Image.init()
    return frozenset(ext.lower() for ext in Image.registered_extensions())


def _visible_subdirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder_samples(split_root: Path) -> tuple[list[str], list[_Sample]]:
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
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except Exception as err:  # Pillow's decoders raise many unrelated types on corrupt files
        raise DatasetError(f"cannot read image {path}: {err}") from err


def _read_image(path: Path, mode: str, side: int) -> np.ndarray:
    """Decode ``path``, convert to ``mode``, resize the shorter side to ``side``, centre-crop; (H, W[, C])."""
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
