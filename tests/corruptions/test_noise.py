"""Tests for supcon.corruptions.noise: the Gaussian noise formula, shot and impulse noise statistics."""

from __future__ import annotations

import math

import torch
from corruption_cases import scene

from supcon.corruptions import corrupt


def test_gaussian_noise_formula():
    images = scene(2, 3, 16, 16)
    out = corrupt(images, "gaussian_noise", 3, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, (images + 0.08 * noise).clamp(0, 1))


def test_shot_noise_statistics():
    images = torch.full((1, 3, 64, 64), 0.5)
    out = corrupt(images, "shot_noise", 5, generator=torch.Generator().manual_seed(0))  # Poisson(0.5 * 50) / 50
    assert abs(out.mean().item() - 0.5) < 0.01
    assert abs(out.std().item() - math.sqrt(0.5 / 50)) < 0.01


def test_impulse_noise_statistics():
    images = torch.full((1, 3, 64, 64), 0.5)
    out = corrupt(images, "impulse_noise", 5, generator=torch.Generator().manual_seed(0))
    salt, pepper = (out == 1).float().mean().item(), (out == 0).float().mean().item()
    assert abs(salt + pepper - 0.07) < 0.01 and abs(salt - pepper) < 0.01
    assert ((out == 0) | (out == 1) | (out == 0.5)).all()
