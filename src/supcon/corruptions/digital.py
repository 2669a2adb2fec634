"""Digital corruptions: brightness and saturation (HSV), contrast, elastic transform and pixelate.

Each takes x (B, C, H, W) floating in [0, 1], a severity from 1 to 5 and a generator, and returns
the same shape, unclamped (:func:`supcon.corruptions.corrupt` checks, converts and clamps).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from supcon.corruptions.colour import hsv_to_rgb, luminance, rgb_to_hsv
from supcon.corruptions.filters import base_hw, gaussian_filter, pil_box_weights, resize, spatial_scale
from supcon.corruptions.rng import rand
from supcon.corruptions.tables import BASE_SIZE, BRIGHTNESS, CONTRAST, ELASTIC, PIXELATE, SATURATE


def brightness(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Add the severity's shift to the HSV value; hue and saturation stay."""
    shift = BRIGHTNESS[severity - 1]
    value = x.amax(dim=1, keepdim=True)
    new_value = (value + shift).clamp(0, 1)
    # with hue and saturation fixed, every RGB channel is proportional to the HSV value
    ratio = new_value / torch.where(value > 0, value, torch.ones_like(value))
    return torch.where(value > 0, x * ratio, new_value.expand_as(x))


def saturate(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Scale and shift the HSV saturation (grey images: as RGB with R = G = B, then luminance)."""
    factor, offset = SATURATE[severity - 1]
    rgb = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    hsv = rgb_to_hsv(rgb)
    hsv = torch.stack((hsv[:, 0], (hsv[:, 1] * factor + offset).clamp(0, 1), hsv[:, 2]), dim=1)
    out = hsv_to_rgb(hsv)
    return luminance(out) if x.shape[1] == 1 else out


def contrast(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Scale each channel's deviation from its mean by the severity's factor."""
    means = x.mean(dim=(2, 3), keepdim=True)
    return (x - means) * CONTRAST[severity - 1] + means


def _pixel_grid(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column coordinates (H, W) of every pixel, float64."""
    return torch.meshgrid(torch.arange(height, dtype=torch.float64, device=device),
                          torch.arange(width, dtype=torch.float64, device=device), indexing="ij")


def _random_affine(x: torch.Tensor, jitter: float, generator: torch.Generator | None) -> torch.Tensor:
    """Warp x (B, C, H, W) by a random affine map per image, reflect-101 border (align_corners)."""
    batch, _, height, width = x.shape
    size = BASE_SIZE * spatial_scale(height, width)
    # three points around the centre each move by up to jitter * 32 * s pixels
    cx, cy, half = width // 2, height // 2, min(height, width) // 3
    src = torch.tensor([[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]],
                       dtype=torch.float64, device=x.device)
    moved = rand((batch, 3, 2), generator, x).to(torch.float64) * (2 * jitter * size) - jitter * size
    dst = src + moved
    ones = torch.ones(batch, 3, 1, dtype=torch.float64, device=x.device)
    # maps output pixel coordinates back to input coordinates: [x, y, 1] @ inverse -> [x', y']
    inverse = torch.linalg.solve(torch.cat((dst, ones), dim=2), src.expand(batch, 3, 2))
    ys, xs = _pixel_grid(height, width, x.device)
    points = torch.stack((xs, ys, torch.ones_like(xs)), dim=-1).view(1, -1, 3)
    source = torch.matmul(points, inverse).view(batch, height, width, 2)
    scale_xy = torch.tensor([max(width - 1, 1), max(height - 1, 1)], dtype=torch.float64, device=x.device)
    grid = (2 * source / scale_xy - 1).to(x.dtype)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def _random_displacement(x: torch.Tensor, alpha: float, sigma: float,
                         generator: torch.Generator | None) -> torch.Tensor:
    """Move every pixel of x (B, C, H, W) by smooth random fields, drawn at the base size."""
    batch, _, height, width = x.shape
    # displacements are drawn and smoothed in base-size pixels, then resized and scaled
    base_h, base_w = base_hw(height, width)
    field = rand((batch, 2, base_h, base_w), generator, x) * 2 - 1
    field = gaussian_filter(field, sigma * BASE_SIZE, truncate=3.0, mode="symmetric") * (alpha * BASE_SIZE)
    if (base_h, base_w) != (height, width):
        field = resize(field, (height, width)) * spatial_scale(height, width)
    ys, xs = (coords.to(x.dtype) for coords in _pixel_grid(height, width, x.device))
    grid = torch.stack(((2 * (xs + field[:, 0]) + 1) / width - 1, (2 * (ys + field[:, 1]) + 1) / height - 1), dim=-1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def elastic_transform(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """A random affine warp, then (from severity 2) a smooth random elastic displacement."""
    alpha, sigma, jitter = ELASTIC[severity - 1]
    x = _random_affine(x, jitter, generator)
    if alpha == 0:
        return x
    return _random_displacement(x, alpha, sigma, generator)


def pixelate(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Shrink by the severity's ratio and enlarge again, both with PIL's box filter weights."""
    ratio = PIXELATE[severity - 1]
    height, width = x.shape[-2:]
    small_h, small_w = max(1, int(height * ratio)), max(1, int(width * ratio))

    def box(n_in: int, n_out: int) -> torch.Tensor:
        return torch.from_numpy(pil_box_weights(n_in, n_out)).to(dtype=x.dtype, device=x.device)

    rows = box(small_h, height) @ box(height, small_h)
    cols = box(small_w, width) @ box(width, small_w)
    return torch.matmul(torch.matmul(rows, x), cols.T)
