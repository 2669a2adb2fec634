"""Decoding image files to uint8 pixels, one file at a time or on every core.

:class:`ImageDecoder` reads the headers (size and mode) of many files and decodes them to
``(N, C, S, S)`` uint8 with the folder reader's rules: scale images of more than 8 bits to 8 (see
:func:`eight_bit`), convert to ``mode`` (``"RGB"`` or ``"L"``), resize the shorter side to ``S``
(bilinear) and centre-crop ``S x S``. With more than one worker the files are
split into contiguous chunks, decoded by a pool and put back in order, so the output is identical to
the serial decode's. Most of the time per small image is Pillow's header parsing in Python, which holds
the GIL, so on Linux the pool is of forked processes (they inherit the loaded modules: no start-up
imports); elsewhere it is of threads. A file that cannot be read is not an exception here: it is
returned as a failure (its index and message) so the caller can name every bad file at once.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from types import TracebackType
from typing import TypeVar

import numpy as np
from PIL import Image

from supcon.data.base import DatasetError

#: Pillow modes that hold one grey channel; a folder made only of these loads as 1-channel "L".
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
#: Grey modes of more than 8 bits: 16-bit unsigned (``I;16*``; Pillow also opens 16-bit PNGs as ``I``,
#: 32-bit signed, which is read on the same 0..65535 scale) and 32-bit float (``F``, read as 0..1).
HIGH_BIT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_SIXTEEN_BIT_MAX = 65535

#: ``((width, height), mode)`` of an image file.
ImageHeader = tuple[tuple[int, int], str]
#: ``(index into the paths given, message)`` of a file that could not be read.
Failure = tuple[int, str]

# Fewer files than this are decoded in the calling thread: a pool costs more than it saves.
_PARALLEL_MIN_FILES = 1024
# Chunks per worker: enough to even out slow chunks, few enough that per-task overhead stays small.
_CHUNKS_PER_WORKER = 8
_MIN_CHUNK = 64

_T = TypeVar("_T")


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_backend() -> str:
    """``"process"`` (forked workers) on Linux, else ``"thread"``.

    Fork is unsafe on macOS and absent on Windows, and a daemonic process (a ``multiprocessing`` pool
    worker) may not have children.
    """
    if sys.platform.startswith("linux") and not multiprocessing.current_process().daemon:
        return "process"
    return "thread"


class ImageDecoder:
    """Reads headers and pixels of image files, with ``workers`` parallel workers (a context manager).

    Args:
        workers: parallel workers; ``None`` is :func:`available_cpus`; ``1`` decodes in this thread.
        backend: ``"process"`` or ``"thread"``; ``None`` is :func:`default_backend`.

    The pool starts on first use (only for at least ``_PARALLEL_MIN_FILES`` files) and is shut down on
    leaving the ``with`` block.
    """

    def __init__(self, workers: int | None = None, backend: str | None = None) -> None:
        self.workers = available_cpus() if workers is None else max(1, int(workers))
        self.backend = default_backend() if backend is None else backend
        if self.backend not in ("process", "thread"):
            raise ValueError(f"backend must be 'process' or 'thread', got {self.backend!r}")
        self._pool: Executor | None = None

    def __enter__(self) -> ImageDecoder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def headers(self, paths: Sequence[str]) -> tuple[list[ImageHeader | None], list[Failure]]:
        """Size and mode of every file (``None`` where unreadable), and the failures, in ``paths`` order."""
        headers: list[ImageHeader | None] = []
        failures: list[Failure] = []
        for offset, (chunk_headers, chunk_failures) in self._map(_headers_chunk, paths):
            headers.extend(chunk_headers)
            failures.extend((offset + i, message) for i, message in chunk_failures)
        return headers, failures

    def decode(self, paths: Sequence[str], mode: str, side: int) -> tuple[np.ndarray, list[Failure]]:
        """Pixels of every file, ``(len(paths), C, side, side)`` uint8 (``C`` 1 for ``"L"``, else 3).

        Rows of files that failed are zero; the failures are returned in ``paths`` order.
        """
        channels = 1 if mode == "L" else 3
        images = np.empty((len(paths), channels, side, side), dtype=np.uint8)
        failures: list[Failure] = []
        work = partial(_decode_chunk, mode=mode, side=side)
        for offset, (chunk_images, chunk_failures) in self._map(work, paths):
            images[offset : offset + len(chunk_images)] = chunk_images.transpose(0, 3, 1, 2)
            failures.extend((offset + i, message) for i, message in chunk_failures)
        return images, failures

    def _map(self, work: Callable[[list[str]], _T], paths: Sequence[str]) -> list[tuple[int, _T]]:
        """``work`` applied to contiguous chunks of ``paths``: ``(offset of the chunk, result)`` in order."""
        paths = list(paths)
        if self.workers == 1 or len(paths) < _PARALLEL_MIN_FILES:
            return [(0, work(paths))]
        size = max(_MIN_CHUNK, math.ceil(len(paths) / (self.workers * _CHUNKS_PER_WORKER)))
        offsets = range(0, len(paths), size)
        results = self._executor().map(work, [paths[o : o + size] for o in offsets])
        return list(zip(offsets, results))

    def _executor(self) -> Executor:
        if self._pool is None:
            if self.backend == "process":
                context = multiprocessing.get_context("fork")
                self._pool = ProcessPoolExecutor(self.workers, mp_context=context)
            else:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="supcon-decode")
        return self._pool


def image_header(path: str) -> ImageHeader:
    """``((width, height), mode)`` of an image file, from its header only.

    Raises:
        DatasetError: Pillow cannot identify or parse the file; the message names it.
    """
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except Exception as err:  # Pillow's decoders raise many unrelated types on corrupt files
        raise DatasetError(f"cannot read image {path}: {err}") from err


def eight_bit(image: Image.Image) -> Image.Image:
    """An image of more than 8 bits (:data:`HIGH_BIT_MODES`) as 8-bit ``"L"``, scaled by its bit depth.

    Pillow's own ``convert("L")`` clips such pixels at 255 (a 16-bit image turns white); here 16-bit
    values ``v`` in 0..65535 become ``round(v * 255 / 65535)`` and float values in 0..1 become
    ``round(v * 255)``. Other modes are returned unchanged.

    Raises:
        ValueError: an ``I`` image with values outside 0..65535, or an ``F`` image with values outside
            0..1 (or NaN): their scale is unknown, so they are refused rather than guessed.
    """
    if image.mode not in HIGH_BIT_MODES:
        return image
    pixels = np.asarray(image)
    if image.mode == "F":
        if pixels.size and not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 1):
            raise ValueError(
                f"float pixels (mode F) in [{np.nanmin(pixels):g}, {np.nanmax(pixels):g}]: only float images in "
                "0..1 can be scaled to 8 bits; save it as an 8- or 16-bit image")
        scaled = pixels.astype(np.float64) * 255
    else:
        if pixels.size and (pixels.min() < 0 or pixels.max() > _SIXTEEN_BIT_MAX):
            raise ValueError(
                f"32-bit integer pixels (mode {image.mode}) in [{pixels.min()}, {pixels.max()}], outside the "
                f"16-bit range 0..{_SIXTEEN_BIT_MAX}: save it as an 8- or 16-bit image")
        scaled = pixels.astype(np.float64) * (255 / _SIXTEEN_BIT_MAX)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), "L")


def read_image(path: str, mode: str, side: int) -> np.ndarray:
    """Decode ``path``, scale it to 8 bits (:func:`eight_bit`), convert to ``mode``, resize the shorter
    side to ``side``, centre-crop; (H, W[, C]).

    Raises:
        DatasetError: the file is corrupt or truncated, or its pixels cannot be scaled to 8 bits; the
            message names it.
    """
    try:
        with Image.open(path) as image:
            image = eight_bit(image).convert(mode)
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


def _headers_chunk(paths: list[str]) -> tuple[list[ImageHeader | None], list[Failure]]:
    """One worker task: the headers of ``paths`` (module level, so a process pool can pickle it)."""
    headers: list[ImageHeader | None] = []
    failures: list[Failure] = []
    for i, path in enumerate(paths):
        try:
            headers.append(image_header(path))
        except DatasetError as err:
            headers.append(None)
            failures.append((i, str(err)))
    return headers, failures


def _decode_chunk(paths: list[str], mode: str, side: int) -> tuple[np.ndarray, list[Failure]]:
    """One worker task: ``(len(paths), side, side, C)`` uint8 pixels of ``paths`` and their failures."""
    channels = 1 if mode == "L" else 3
    images = np.zeros((len(paths), side, side, channels), dtype=np.uint8)
    failures: list[Failure] = []
    for i, path in enumerate(paths):
        try:
            images[i] = read_image(path, mode, side).reshape(side, side, channels)
        except DatasetError as err:
            failures.append((i, str(err)))
    return images, failures
