"""Colour helpers of the corruptions: luminance, colour constants for 1 or 3 channels, RGB <-> HSV."""

from __future__ import annotations

import torch

from supcon.corruptions.tables import LUMA


def luminance(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) with ITU-R 601 weights; (B, 1, H, W) is returned as is."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def colour_tensor(rgb: tuple[float, float, float], channels: int, like: torch.Tensor) -> torch.Tensor:
    """An RGB colour as a (1, C, 1, 1) tensor; its luminance when C is 1."""
    if channels == 1:
        rgb = (sum(w * c for w, c in zip(LUMA, rgb)),)
    return torch.tensor(rgb, dtype=like.dtype, device=like.device).view(1, channels, 1, 1)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV with hue in [0, 1), as skimage.color.rgb2hsv."""
    r, g, b = rgb.unbind(1)
    value = rgb.amax(dim=1)
    delta = value - rgb.amin(dim=1)
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    safe_value = torch.where(value > 0, value, torch.ones_like(value))
    saturation = torch.where(delta > 0, delta / safe_value, torch.zeros_like(delta))
    # later channels win ties, as in skimage
    hue = torch.where(r == value, (g - b) / safe_delta, torch.zeros_like(value))
    hue = torch.where(g == value, 2.0 + (b - r) / safe_delta, hue)
    hue = torch.where(b == value, 4.0 + (r - g) / safe_delta, hue)
    hue = torch.where(delta > 0, (hue / 6.0).remainder(1.0), torch.zeros_like(hue))
    return torch.stack((hue, saturation, value), dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`, as skimage.color.hsv2rgb."""
    hue, saturation, value = hsv.unbind(1)
    sector = torch.floor(hue * 6.0)
    f = hue * 6.0 - sector
    sector = sector.remainder(6).long()
    p = value * (1 - saturation)
    q = value * (1 - f * saturation)
    t = value * (1 - (1 - f) * saturation)
    choices_r = torch.stack((value, q, p, p, t, value), dim=1)
    choices_g = torch.stack((t, value, value, q, p, p), dim=1)
    choices_b = torch.stack((p, p, t, value, value, q), dim=1)
    index = sector.unsqueeze(1)
    return torch.cat([c.gather(1, index) for c in (choices_r, choices_g, choices_b)], dim=1)
