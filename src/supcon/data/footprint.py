"""Will the images fit in memory? The estimate made before a dataset is decoded or resized.

Every split is held in memory as ``(N, C, S, S)`` uint8, and training adds a batch of float32 views
(``batch x views x C x S x S x 4`` bytes). A large ``image_size`` (``--image-size 100000``) would
otherwise have the process allocate terabytes, or be killed by the kernel halfway; instead the reader
refuses before allocating, with the estimate and the machine's physical memory in the message.
"""

from __future__ import annotations

import os

from supcon.data.base import DatasetError

__all__ = ["physical_memory", "image_bytes", "check_fits_in_memory"]

# Bytes per pixel of the float32 views a training batch makes.
_FLOAT_BYTES = 4


def physical_memory() -> int | None:
    """Bytes of physical memory (``SC_PHYS_PAGES x SC_PAGE_SIZE``), or None where the OS does not say."""
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


def image_bytes(images: int, channels: int, side: int, *, batch_views: int = 0) -> int:
    """Bytes of ``images`` uint8 images ``(channels, side, side)`` plus ``batch_views`` float32 views."""
    pixels = channels * side * side
    return images * pixels + batch_views * pixels * _FLOAT_BYTES


def _size(count: int) -> str:
    """``1.5 GiB``: a byte count for a message."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_fits_in_memory(images: int, channels: int, side: int, source: str, *, batch_views: int = 0) -> None:
    """Refuse images (and a batch of float views) that need more bytes than the machine has.

    Args:
        images: how many images will be held (``N``).
        channels, side: each image is ``(channels, side, side)`` uint8.
        source: what is being loaded, for the message (a dataset spec).
        batch_views: float32 views of one training batch (``batch_size x views``), 0 when not training.

    Raises:
        DatasetError: the estimate exceeds :func:`physical_memory`; the message gives both and says to
            pass a smaller ``image_size``. Nothing is checked where the OS does not report its memory.
    """
    available = physical_memory()
    need = image_bytes(images, channels, side, batch_views=batch_views)
    if available is None or need <= available:
        return
    parts = f"{images} images x {channels} x {side} x {side} bytes (uint8)"
    if batch_views:
        parts += f" + a batch of {batch_views} float32 views"
    raise DatasetError(
        f"{source} at image_size {side} needs about {_size(need)} of memory ({parts}), more than the "
        f"{_size(available)} this machine has: pass a smaller --image-size (image_size)"
    )
