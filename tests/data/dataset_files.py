"""Helpers shared by the dataset tests in tests/data (imported by plain name)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def sorted_rows(images: torch.Tensor) -> list[bytes]:
    """Every image's bytes, sorted: compares two image sets as multisets, whatever their order."""
    return sorted(row.numpy().tobytes() for row in images.reshape(images.shape[0], -1))


def save_image(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    """Write ``array`` (H, W[, C]) uint8 as an image file (format from ``fmt`` or the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt)
    return path


def rgb(height: int, width: int, value: tuple[int, int, int]) -> np.ndarray:
    """A flat ``(height, width, 3)`` uint8 image of colour ``value``."""
    return np.broadcast_to(np.array(value, dtype=np.uint8), (height, width, 3)).copy()


def noise(height: int, width: int, seed: int, channels: int = 3) -> np.ndarray:
    """A ``(height, width, channels)`` uint8 image of seeded noise (``channels == 1``: ``(height, width)``)."""
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_image_tree(root: Path, classes: tuple[str, ...] = ("ant", "bee", "cow"), per_class: int = 8) -> Path:
    """``root/<class>/`` folders of small noisy images: PNG and JPEG, mixed sizes, nested subfolders."""
    for k, name in enumerate(classes):
        for i in range(per_class):
            seed = 100 * k + i
            side = (8, 8, 12)[i % 3]  # the most common side is 8; JPEGs of odd i are one pixel wider
            sub = "deep/" if i % 4 == 3 else ""
            if i % 2:
                save_image(root / name / f"{sub}{i:02d}.jpg", noise(side, side + i % 2, seed), "JPEG")
            else:
                save_image(root / name / f"{sub}{i:02d}.png", noise(side, side, seed))
    return root


def truncated_jpeg(path: Path, seed: int = 0) -> Path:
    """A JPEG whose header is fine but whose data stops halfway (Pillow opens it, decoding fails)."""
    buffer = io.BytesIO()
    Image.fromarray(noise(32, 32, seed)).save(buffer, format="JPEG", quality=95)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


def corrupt_png(path: Path) -> Path:
    """A file with a PNG signature and garbage after it (Pillow cannot even read its header)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return path
