"""Loose image files for a trained encoder, decoded the way its training images were.

:func:`list_image_files` expands files and folders into image files; :func:`decode_images` decodes
them with the folder reader's own decoder (:class:`supcon.data.decode.ImageDecoder`: high bit depths
scaled to 8 bits, converted to ``L`` or ``RGB`` for the encoder's channels, shorter side resized to the
training side, centre-cropped), every core, unreadable files reported rather than raised.
:func:`match_channels` converts in-memory uint8 images between gray and RGB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from supcon.config import ConfigError
from supcon.data.decode import ImageDecoder

__all__ = ["IMAGE_MODES", "list_image_files", "decode_images", "match_channels"]

#: Pillow mode of each channel count an encoder may take.
IMAGE_MODES: dict[int, str] = {1: "L", 3: "RGB"}

# ITU-R 601-2 luma, the weights of Pillow's own RGB -> L conversion.
_LUMA = (0.299, 0.587, 0.114)


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


def match_channels(images: Tensor, channels: int) -> Tensor:
    """uint8 ``(N, C, H, W)`` images as ``channels`` channels: gray repeated to RGB, RGB to luma.

    Returns ``images`` itself when it already has ``channels`` channels.

    Raises:
        ConfigError: a conversion other than 1 <-> 3 channels.
    """
    have = int(images.shape[1])
    if have == channels:
        return images
    if (have, channels) == (1, 3):
        return images.expand(-1, 3, -1, -1).contiguous()
    if (have, channels) == (3, 1):
        weights = torch.tensor(_LUMA, dtype=torch.float32).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ConfigError(f"images have {have} channels, the encoder takes {channels}: only gray <-> RGB is converted")

