"""Noise corruptions: gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each takes x (B, C, H, W) floating in [0, 1], a severity from 1 to 5 and a generator, and returns
the same shape, unclamped (:func:`supcon.corruptions.corrupt` checks, converts and clamps).
"""

from __future__ import annotations

import torch

from supcon.corruptions.rng import rand, randn, rng_device
from supcon.corruptions.tables import GAUSSIAN_NOISE, IMPULSE_NOISE, SHOT_NOISE, SPECKLE_NOISE


def gaussian_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Additive Gaussian noise of the severity's standard deviation."""
    return x + GAUSSIAN_NOISE[severity - 1] * randn(tuple(x.shape), generator, x)


def shot_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson noise: photon counts at the severity's rate per unit intensity, rescaled."""
    rate = SHOT_NOISE[severity - 1]
    lam = (x * rate).to(rng_device(generator, x))
    return torch.poisson(lam, generator=generator).to(x.device) / rate


def impulse_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Salt and pepper noise: the severity's fraction of values set to 0 or 1 (even odds)."""
    flipped = rand(tuple(x.shape), generator, x) <= IMPULSE_NOISE[severity - 1]
    salted = rand(tuple(x.shape), generator, x) <= 0.5
    out = torch.where(flipped & salted, torch.ones_like(x), x)
    return torch.where(flipped & ~salted, torch.zeros_like(x), out)


def speckle_noise(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Multiplicative Gaussian noise: x + x * sigma * N(0, 1)."""
    return x + x * SPECKLE_NOISE[severity - 1] * randn(tuple(x.shape), generator, x)
