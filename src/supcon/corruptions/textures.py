"""Random textures: the diamond-square plasma fractal of make_cifar_c.py, drawn at the base size."""

from __future__ import annotations

import torch

from supcon.corruptions.filters import base_hw, resize
from supcon.corruptions.rng import rand


def _plasma_fractal(batch: int, mapsize: int, wibble_decay: float, generator: torch.Generator | None,
                    like: torch.Tensor) -> torch.Tensor:
    """Diamond-square height maps in [0, 1], as make_cifar_c.plasma_fractal.

    Returns:
        (B, mapsize, mapsize); mapsize is a power of two.
    """
    maps = torch.zeros(batch, mapsize, mapsize, dtype=like.dtype, device=like.device)
    step = mapsize
    wibble = 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        noise = rand(tuple(total.shape), generator, like) * (2 * wibble) - wibble
        return total / 4 + wibble * noise

    while step >= 2:
        half = step // 2
        corners = maps[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        maps[:, half::step, half::step] = wibbled_mean(squares)
        centres = maps[:, half::step, half::step]
        corners = maps[:, 0::step, 0::step]
        left = centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2)
        maps[:, 0::step, half::step] = wibbled_mean(left)
        top = centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1)
        maps[:, half::step, 0::step] = wibbled_mean(top)
        step //= 2
        wibble /= wibble_decay
    flat = maps.view(batch, -1)
    flat = flat - flat.amin(dim=1, keepdim=True)
    flat = flat / flat.amax(dim=1, keepdim=True).clamp_min(torch.finfo(like.dtype).tiny)
    return flat.view(batch, mapsize, mapsize)


def texture_plasma(batch: int, height: int, width: int, wibble_decay: float,
                   generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Plasma fractal cropped to the base size of (height, width), resized: (B, 1, height, width)."""
    base_h, base_w = base_hw(height, width)
    mapsize = 1 << max(1, (max(base_h, base_w) - 1).bit_length())
    plasma = _plasma_fractal(batch, mapsize, wibble_decay, generator, like)[:, None, :base_h, :base_w]
    return resize(plasma, (height, width))
