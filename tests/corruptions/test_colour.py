"""Tests for supcon.corruptions.colour: luminance, colour constants, RGB <-> HSV against colorsys."""

from __future__ import annotations

import colorsys

import torch

from supcon.corruptions.colour import colour_tensor, hsv_to_rgb, luminance, rgb_to_hsv


def _pixels() -> torch.Tensor:
    """(1, 3, 4, 5) RGB with random colours, black, white, grey and a red-green tie."""
    rgb = torch.rand(1, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    rgb[0, :, 0, 0] = 0.0
    rgb[0, :, 0, 1] = 1.0
    rgb[0, :, 0, 2] = 0.4
    rgb[0, :, 0, 3] = torch.tensor([0.5, 0.5, 0.2])
    return rgb


def test_rgb_to_hsv_matches_colorsys():
    rgb = _pixels()
    hsv = rgb_to_hsv(rgb)
    for i in range(4):
        for j in range(5):
            expected = torch.tensor(colorsys.rgb_to_hsv(*rgb[0, :, i, j].tolist()), dtype=torch.float64)
            torch.testing.assert_close(hsv[0, :, i, j], expected)


def test_hsv_to_rgb_inverts_rgb_to_hsv():
    rgb = _pixels()
    torch.testing.assert_close(hsv_to_rgb(rgb_to_hsv(rgb)), rgb)


def test_luminance():
    rgb = _pixels()
    expected = 0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]
    torch.testing.assert_close(luminance(rgb), expected)
    grey = rgb[:, :1]
    assert luminance(grey) is grey


def test_colour_tensor():
    like = torch.zeros(1, dtype=torch.float64)
    colour = (0.2, 0.4, 0.6)
    rgb = colour_tensor(colour, 3, like)
    assert rgb.shape == (1, 3, 1, 1) and rgb.dtype == torch.float64
    torch.testing.assert_close(rgb.flatten(), torch.tensor(colour, dtype=torch.float64))
    grey = colour_tensor(colour, 1, like)
    assert grey.shape == (1, 1, 1, 1)
    torch.testing.assert_close(grey, luminance(rgb))
