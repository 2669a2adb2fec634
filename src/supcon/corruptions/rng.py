"""Random draws for the corruptions: made on the generator's device, then moved to the images' device.

``generator=None`` uses torch's default generator of the images' device; a generator on another
device than the images works, and the same generator state gives the same numbers.
"""

from __future__ import annotations

import torch


def rng_device(generator: torch.Generator | None, like: torch.Tensor) -> torch.device:
    """The device random numbers are drawn on: the generator's, else the images'."""
    return generator.device if generator is not None else like.device


def rand(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) numbers of ``shape`` with the dtype and device of ``like``."""
    out = torch.rand(shape, generator=generator, device=rng_device(generator, like), dtype=like.dtype)
    return out.to(like.device)


def randn(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers of ``shape`` with the dtype and device of ``like``."""
    out = torch.randn(shape, generator=generator, device=rng_device(generator, like), dtype=like.dtype)
    return out.to(like.device)


def randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None,
            like: torch.Tensor) -> torch.Tensor:
    """Integers in [low, high) of ``shape`` on the device of ``like``."""
    out = torch.randint(low, high, shape, generator=generator, device=rng_device(generator, like))
    return out.to(like.device)
