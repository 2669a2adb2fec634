"""The corruption registry: names and groups, the name -> implementation table, argument checks,
:func:`corrupt` (one batch) and :func:`corrupt_dataset` (a whole tensor, reproducibly)."""

from __future__ import annotations

import numbers
import zlib
from typing import Callable

import torch

from supcon.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, motion_blur, zoom_blur
from supcon.corruptions.digital import brightness, contrast, elastic_transform, pixelate, saturate
from supcon.corruptions.jpeg import jpeg_compression
from supcon.corruptions.noise import gaussian_noise, impulse_noise, shot_noise, speckle_noise
from supcon.corruptions.spatter import spatter
from supcon.corruptions.weather import fog, frost, snow

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
"""The 15 CIFAR-10-C benchmark corruptions, in the standard order."""

EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out corruptions released with CIFAR-10-C."""

CORRUPTION_GROUPS: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": EXTRA_CORRUPTIONS,
}
"""The benchmark's four categories of ``CORRUPTIONS``, plus the extra corruptions."""

# Each implementation takes x (B, C, H, W) floating in [0, 1], a severity and a generator, and
# returns the same shape, unclamped.
_Corruption = Callable[[torch.Tensor, int, "torch.Generator | None"], torch.Tensor]

_IMPLEMENTATIONS: dict[str, _Corruption] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "zoom_blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic_transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg_compression": jpeg_compression,
    "speckle_noise": speckle_noise,
    "gaussian_blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
}


def _all_names() -> tuple[str, ...]:
    return CORRUPTIONS + EXTRA_CORRUPTIONS


def check_name(name: object) -> str:
    """``name`` if it names a corruption, else ValueError listing the valid names."""
    if not isinstance(name, str) or name not in _IMPLEMENTATIONS:
        raise ValueError(f"name must be one of {', '.join(_all_names())}; got {name!r}")
    return name


def check_severity(severity: object) -> int:
    """``severity`` as an int if it is an int from 1 to 5 (not a bool), else ValueError."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= severity <= 5:
        raise ValueError(f"severity must be an int from 1 to 5, got {severity!r}")
    return int(severity)


def check_images(images: object) -> torch.Tensor:
    """``images`` if it is a (B, 1 or 3, H, W) uint8 or floating tensor, else ValueError."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (B, C, H, W) with C in (1, 3), got {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or floating (0..1), got dtype {images.dtype}")
    return images


def corrupt(images: torch.Tensor, name: str, severity: int, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply one corruption at one CIFAR-10-C severity to a batch of images.

    Args:
        images: (B, C, H, W) with C in {1, 3}; uint8 in 0..255, or floating in [0, 1] (half
            precision is computed in float32). Any size: parameters are CIFAR-10-C's, and spatial
            ones scale with ``min(H, W) / 32`` for images larger than 32x32 (see the
            :mod:`supcon.corruptions` docstring).
        name: one of ``CORRUPTIONS`` or ``EXTRA_CORRUPTIONS``.
        severity: int from 1 to 5.
        generator: source of all randomness; ``None`` uses torch's default generator of the
            images' device. A generator on another device than the images works (numbers are
            drawn there and moved). The same generator state gives the same output.

    Returns:
        (B, C, H, W) with the dtype and device of ``images``: uint8 outputs are rounded to the
        nearest level, floating outputs clamped to [0, 1].

    Raises:
        ValueError: unknown ``name``, ``severity`` not an int in 1..5, or ``images`` not a
            (B, 1 or 3, H, W) uint8 / floating tensor.
    """
    check_name(name)
    check_severity(severity)
    check_images(images)
    if images.shape[0] == 0:
        return images.clone()
    if images.dtype == torch.uint8:
        x = images.to(torch.float32) / 255
    elif images.dtype in (torch.float32, torch.float64):
        x = images
    else:
        x = images.to(torch.float32)
    out = _IMPLEMENTATIONS[name](x, severity, generator).clamp(0, 1)
    if images.dtype == torch.uint8:
        return torch.round(out * 255).to(torch.uint8)
    return out.to(images.dtype)


def _combo_seed(seed: int, name: str, severity: int) -> int:
    """A stable (process-independent) seed for one (seed, corruption, severity) combination."""
    return (seed * 1_000_003 + zlib.crc32(f"{name}/{severity}".encode())) % (2 ** 63)


def corrupt_dataset(images: torch.Tensor, name: str, severity: int, *, seed: int = 0, batch_size: int = 256,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Corrupt a whole image tensor in batches, reproducibly.

    A generator seeded from (``seed``, ``name``, ``severity``) drives :func:`corrupt` over
    consecutive batches, so each combination gives the same images on every run (for the same
    ``batch_size`` and device; the random streams of CPU and CUDA differ).

    Args:
        images: (N, C, H, W) uint8 or floating in [0, 1], C in {1, 3}.
        name: one of ``CORRUPTIONS`` or ``EXTRA_CORRUPTIONS``.
        severity: int from 1 to 5.
        seed: base seed.
        batch_size: images per call to :func:`corrupt`.
        device: where to compute (e.g. ``"cuda"``); default: the images' device. The result is
            returned on the images' device.

    Returns:
        (N, C, H, W), dtype and device of ``images``.

    Raises:
        ValueError: as :func:`corrupt`, for a non-int ``seed`` or a ``batch_size`` below 1.
    """
    check_name(name)
    check_severity(severity)
    check_images(images)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    work_device = torch.device(device) if device is not None else images.device
    generator = torch.Generator(device=work_device)
    generator.manual_seed(_combo_seed(int(seed), name, int(severity)))
    out = torch.empty_like(images)
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size].to(work_device)
        out[start:start + batch_size] = corrupt(batch, name, severity, generator=generator).to(images.device)
    return out
