"""Loose image files for a trained encoder, decoded the way its training images were.

:func:`list_image_files` expands files and folders into image files; :func:`decode_images` decodes
them with the folder reader's own decoder (:class:`supcon.data.decode.ImageDecoder`: high bit depths
scaled to 8 bits, converted to ``L`` or ``RGB`` for the encoder's channels, shorter side resized to the
training side, centre-cropped), every core, unreadable files reported rather than raised.
:func:`match_channels` (from :mod:`supcon.data.adapt`, where the whole transfer rule is stated) converts
in-memory uint8 images between gray and RGB the way Pillow's ``L`` / ``RGB`` conversion does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from supcon.config import ConfigError
from supcon.data.adapt import match_channels
from supcon.data.decode import ImageDecoder

__all__ = ["IMAGE_MODES", "list_image_files", "decode_images", "match_channels"]

#: Pillow mode of each channel count an encoder may take.
IMAGE_MODES: dict[int, str] = {1: "L", 3: "RGB"}


def list_image_files(inputs: Iterable[str | Path]) -> list[Path]:
    """The image files named by ``inputs``: files as given, folders walked (sorted, any depth).

    In a folder, files whose extension Pillow knows are taken and hidden files and folders skipped;
    a file named directly is always taken (if it is not an image, decoding it reports why).

    Raises:
        ConfigError: an input that does not exist, or no image file at all.
    """
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    found: list[Path] = []
    for given in inputs:
        path = Path(given).expanduser()
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in extensions
                         and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"--images: {path} is neither a file nor a folder")
    if not found:
        raise ConfigError(f"--images: no image files in {', '.join(str(p) for p in inputs)}")
    return found


def decode_images(paths: Sequence[str | Path], channels: int, side: int,
                  decoder: ImageDecoder | None = None) -> tuple[Tensor, dict[int, str]]:
    """``(len(paths), channels, side, side)`` uint8 images and ``{index: message}`` of unreadable files.

    Rows of unreadable files are zero. ``decoder`` (a :class:`~supcon.data.decode.ImageDecoder`,
    reused across calls) defaults to one for this call.

    Raises:
        ConfigError: ``channels`` is not 1 or 3.
    """
    if channels not in IMAGE_MODES:
        raise ConfigError(f"images of {channels} channels cannot be read from image files (only 1 or 3)")
    names = [str(p) for p in paths]
    if decoder is None:
        with ImageDecoder() as own:
            images, failures = own.decode(names, IMAGE_MODES[channels], side)
    else:
        images, failures = decoder.decode(names, IMAGE_MODES[channels], side)
    return torch.from_numpy(images), dict(failures)
