"""Weather corruptions: snow, frost (procedural texture) and fog (plasma fractal).

Each takes x (B, C, H, W) floating in [0, 1], a severity from 1 to 5 and a generator, and returns
the same shape, unclamped (:func:`supcon.corruptions.corrupt` checks, converts and clamps).
"""

from __future__ import annotations

import torch

from supcon.corruptions.colour import colour_tensor, luminance
from supcon.corruptions.filters import (
    base_hw,
    clipped_zoom,
    directional_blur,
    gaussian_filter,
    line_offsets,
    resize,
    shift_sum,
    spatial_scale,
)
from supcon.corruptions.rng import rand, randn
from supcon.corruptions.tables import FOG, FROST, FROST_TINT, SNOW
from supcon.corruptions.textures import texture_plasma


def snow(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """A zoomed, thresholded, motion-blurred snow layer over a brightened image."""
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[severity - 1]
    batch, _, height, width = x.shape
    base_h, base_w = base_hw(height, width)
    s = spatial_scale(height, width)
    layer = loc + scale * randn((batch, 1, base_h, base_w), generator, x)
    layer = clipped_zoom(layer, zoom)
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer)
    layer = torch.floor(layer.clamp(0, 1) * 255) / 255  # stored as an 8-bit PNG
    layer = resize(layer, (height, width))
    angles = rand((batch,), generator, x) * 90.0 - 135.0
    layer = directional_blur(layer, radius * s, sigma * s, angles)
    layer = torch.round(layer * 255) / 255
    grey = luminance(x)
    x = blend * x + (1 - blend) * torch.maximum(x, grey * 1.5 + 0.5)
    return x + layer + layer.flip(-2, -1)


def _frost_texture(batch: int, height: int, width: int, generator: torch.Generator | None,
                   like: torch.Tensor) -> torch.Tensor:
    """Procedural frost: plasma haze plus bright ice needles streaked in random directions.

    Returns:
        (B, 1, height, width) in [0, 1], built at the base size and resized.
    """
    base_h, base_w = base_hw(height, width)
    haze = texture_plasma(batch, base_h, base_w, 2.0, generator, like)
    needle_weights = torch.linspace(1.0, 0.3, 6, dtype=torch.float64)
    needles = torch.zeros_like(haze)
    for _ in range(3):
        seeds = (rand(tuple(haze.shape), generator, like) < 0.05).to(like.dtype)
        seeds = seeds * (0.4 + 0.6 * rand(tuple(haze.shape), generator, like))
        angles = rand((batch,), generator, like) * 360.0
        dy, dx = line_offsets(needle_weights.numel(), angles)
        needles = needles + shift_sum(seeds, needle_weights, dy, dx)
    grain = gaussian_filter(rand(tuple(haze.shape), generator, like), 0.7) - 0.5
    texture = 0.15 + 0.5 * haze + 0.75 * needles.clamp(max=1.0) + 0.6 * grain
    texture = gaussian_filter(texture, 0.5).clamp(0, 1)
    return resize(texture, (height, width))


def frost(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Blend of the dimmed image and a pale blue procedural frost texture."""
    image_weight, frost_weight = FROST[severity - 1]
    batch, channels, height, width = x.shape
    texture = _frost_texture(batch, height, width, generator, x)
    return image_weight * x + frost_weight * texture * colour_tensor(FROST_TINT, channels, x)


def fog(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """A plasma-fractal haze added, then rescaled to the image's maximum."""
    amount, wibble_decay = FOG[severity - 1]
    batch, _, height, width = x.shape
    max_value = x.amax(dim=(1, 2, 3), keepdim=True)
    x = x + amount * texture_plasma(batch, height, width, wibble_decay, generator, x)
    return x * max_value / (max_value + amount)
