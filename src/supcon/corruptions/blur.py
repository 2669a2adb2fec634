"""Blur corruptions: gaussian, glass, defocus (disk), motion (ImageMagick line) and zoom blur.

Each takes x (B, C, H, W) floating in [0, 1], a severity from 1 to 5 and a generator, and returns
the same shape, unclamped (:func:`supcon.corruptions.corrupt` checks, converts and clamps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from supcon.corruptions.filters import clipped_zoom, correlate, directional_blur, gaussian_filter, spatial_scale
from supcon.corruptions.rng import rand, randint
from supcon.corruptions.tables import DEFOCUS_BLUR, GAUSSIAN_BLUR, GLASS_BLUR, MOTION_BLUR, ZOOM_BLUR


def gaussian_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian blur (scipy/skimage: nearest border, truncate 4), sigma scaled with the size."""
    return gaussian_filter(x, GAUSSIAN_BLUR[severity - 1] * spatial_scale(*x.shape[-2:]))


def glass_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian blur, local random pixel shuffles, Gaussian blur again (batched approximation)."""
    sigma, delta, iterations = GLASS_BLUR[severity - 1]
    batch, channels, height, width = x.shape
    s = spatial_scale(height, width)
    sigma, delta = sigma * s, max(1, round(delta * s))
    x = torch.floor(gaussian_filter(x, sigma) * 255) / 255  # the published version stores uint8 here
    rows = torch.arange(height, device=x.device)
    cols = torch.arange(width, device=x.device)
    # the published loop visits rows and columns delta + 1 .. size - delta
    row_ok = ((rows > delta) & (rows <= height - delta)).view(1, height, 1)
    col_ok = ((cols > delta) & (cols <= width - delta)).view(1, 1, width)
    for _ in range(iterations):
        offsets = randint(-delta, delta, (2, batch, height, width), generator, x)
        dx = torch.where(row_ok & col_ok, offsets[0], 0)
        dy = torch.where(row_ok & col_ok, offsets[1], 0)
        src_rows = (rows.view(1, height, 1) + dy).clamp(0, height - 1)
        src_cols = (cols.view(1, 1, width) + dx).clamp(0, width - 1)
        index = (src_rows * width + src_cols).view(batch, 1, -1).expand(batch, channels, -1)
        x = x.reshape(batch, channels, -1).gather(2, index).view(batch, channels, height, width)
    return gaussian_filter(x, sigma)


def _disk_kernel(radius: float, alias_blur: float) -> torch.Tensor:
    """make_cifar_c.disk: normalised disk of the given radius, smoothed by a small Gaussian."""
    ksize = 3 if radius <= 8 else 5
    half = int(math.floor(radius)) + ksize // 2
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius ** 2).to(torch.float64)
    disk = disk / disk.sum()
    # cv2.getGaussianKernel(ksize, sigma): samples at -(ksize-1)/2 .. (ksize-1)/2
    t = torch.arange(ksize, dtype=torch.float64) - (ksize - 1) / 2
    gauss = torch.exp(-t * t / (2 * alias_blur * alias_blur))
    gauss = gauss / gauss.sum()
    blur = (gauss[:, None] * gauss[None, :]).view(1, 1, ksize, ksize)
    return F.conv2d(disk.view(1, 1, *disk.shape), blur, padding=ksize // 2)[0, 0]


def defocus_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Correlation with an anti-aliased disk (reflect-101 border)."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    s = spatial_scale(*x.shape[-2:])
    return correlate(x, _disk_kernel(radius * s, alias_blur * s), "reflect101")


def motion_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """ImageMagick motion blur along a random angle in [-45, 45) degrees per image."""
    radius, sigma = MOTION_BLUR[severity - 1]
    s = spatial_scale(*x.shape[-2:])
    angles = rand((x.shape[0],), generator, x) * 90.0 - 45.0
    return directional_blur(x, radius * s, sigma * s, angles)


def zoom_blur(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Mean of the image and its clipped zooms by the severity's factors (scipy order 1)."""
    factors = ZOOM_BLUR[severity - 1]
    out = x.clone()
    for zoom in factors:
        out = out + clipped_zoom(x, zoom)
    return out / (len(factors) + 1)
