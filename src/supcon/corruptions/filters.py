"""Shared image operations of the corruptions: sizes, padding, correlation, Gaussian filtering,
resampling (bilinear, scipy's clipped zoom, PIL's box filter) and ImageMagick's motion-blur line.

Images are (B, C, H, W) floating tensors throughout.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from supcon.corruptions.tables import BASE_SIZE


def spatial_scale(height: int, width: int) -> float:
    """Factor for spatial parameters: min(H, W) / 32, never below 1."""
    return max(1.0, min(height, width) / BASE_SIZE)


def base_hw(height: int, width: int) -> tuple[int, int]:
    """Size at which random textures are drawn: the image size, shrunk to a short side of 32."""
    short = min(height, width)
    if short <= BASE_SIZE:
        return height, width
    return max(1, round(height * BASE_SIZE / short)), max(1, round(width * BASE_SIZE / short))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to (B, C, *size); anti-aliased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def border_index(n: int, before: int, after: int, mode: str, device: torch.device) -> torch.Tensor:
    """Source indices for padding an axis of length n by (before, after) samples.

    Modes: "replicate" (a a | a b c | c c), "reflect101" (c b | a b c | b a, OpenCV's default and
    scipy's "mirror") and "symmetric" (b a | a b c | c b, scipy's "reflect"). Any pad width works.
    """
    idx = torch.arange(-before, n + after, device=device)
    if mode == "replicate" or n == 1:
        return idx.clamp(0, n - 1)
    if mode == "reflect101":
        period = 2 * (n - 1)
        idx = idx.remainder(period)
        return torch.where(idx >= n, period - idx, idx)
    if mode == "symmetric":
        period = 2 * n
        idx = idx.remainder(period)
        return torch.where(idx >= n, period - 1 - idx, idx)
    raise ValueError(f"mode must be replicate, reflect101 or symmetric, got {mode!r}")


def pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int, mode: str) -> torch.Tensor:
    """Pad the last two axes of x by the given widths with a :func:`border_index` mode."""
    if top or bottom:
        x = x.index_select(-2, border_index(x.shape[-2], top, bottom, mode, x.device))
    if left or right:
        x = x.index_select(-1, border_index(x.shape[-1], left, right, mode, x.device))
    return x


def correlate(x: torch.Tensor, kernel: torch.Tensor, mode: str) -> torch.Tensor:
    """Depthwise 2-D correlation of x (B, C, H, W) with kernel (kh, kw), anchored at its centre."""
    kh, kw = kernel.shape
    channels = x.shape[1]
    padded = pad(x, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2, mode)
    weight = kernel.to(dtype=x.dtype, device=x.device).expand(channels, 1, kh, kw).contiguous()
    return F.conv2d(padded, weight, groups=channels)


def _gaussian_kernel1d(sigma: float, truncate: float) -> torch.Tensor:
    """scipy.ndimage's sampled Gaussian: radius int(truncate * sigma + 0.5), normalised to sum 1."""
    if sigma <= 0:
        return torch.ones(1, dtype=torch.float64)
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * t * t / (sigma * sigma))
    return kernel / kernel.sum()


def gaussian_filter(x: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "replicate") -> torch.Tensor:
    """Separable Gaussian over H and W of x (B, C, H, W), as skimage.filters.gaussian (per channel)."""
    kernel = _gaussian_kernel1d(sigma, truncate)
    if kernel.numel() == 1:
        return x
    x = correlate(x, kernel[:, None], mode)
    return correlate(x, kernel[None, :], mode)


@functools.lru_cache(maxsize=256)
def _zoom_weights(n: int, zoom: float) -> np.ndarray:
    """(n, n) matrix of scipy's clipped zoom along one axis.

    Crop the central ceil(n / zoom) samples, resample them to round(ceil(n / zoom) * zoom) samples
    with scipy.ndimage.zoom(order=1) (corner-aligned linear interpolation), keep the central n.
    """
    crop = int(math.ceil(n / zoom))
    top = (n - crop) // 2
    zoomed = int(round(crop * zoom))
    trim = (zoomed - n) // 2
    step = (crop - 1) / (zoomed - 1) if zoomed > 1 else 1.0
    weights = np.zeros((n, n))
    for j in range(n):
        coord = (j + trim) * step
        low = min(int(math.floor(coord)), crop - 1)
        frac = coord - low
        weights[j, top + low] += 1.0 - frac
        if frac > 0:
            weights[j, top + min(low + 1, crop - 1)] += frac
    return weights


def clipped_zoom(x: torch.Tensor, zoom: float) -> torch.Tensor:
    """Zoom x (B, C, H, W) into its centre by ``zoom`` (>= 1), keeping the size."""
    rows = torch.from_numpy(_zoom_weights(x.shape[-2], zoom)).to(dtype=x.dtype, device=x.device)
    cols = torch.from_numpy(_zoom_weights(x.shape[-1], zoom)).to(dtype=x.dtype, device=x.device)
    return torch.matmul(torch.matmul(rows, x), cols.T)


@functools.lru_cache(maxsize=256)
def pil_box_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) resampling matrix of PIL's ``Image.BOX`` filter along one axis."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 0.5 * filter_scale
    weights = np.zeros((out_size, in_size))
    for out in range(out_size):
        centre = (out + 0.5) * scale
        low = max(int(centre - support + 0.5), 0)
        high = min(int(centre + support + 0.5), in_size)
        for src in range(low, high):
            t = (src - centre + 0.5) / filter_scale
            weights[out, src] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = weights[out].sum()
        if total > 0:
            weights[out] /= total
    return weights


def shift_sum(x: torch.Tensor, weights: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """sum_i weights[i] * x[b, :, y + dy[b, i], x + dx[b, i]] with edge pixels outside the image.

    Args:
        x: (B, C, H, W).
        weights: (L,) weight of each tap.
        dy, dx: (B, L) integer offsets of each tap, per image.

    Returns:
        (B, C, H, W).
    """
    batch, channels, height, width = x.shape
    flat = x.reshape(batch, channels, height * width)
    rows = torch.arange(height, device=x.device).view(1, height, 1)
    cols = torch.arange(width, device=x.device).view(1, 1, width)
    out = torch.zeros_like(flat)
    for i, weight in enumerate(weights.tolist()):
        if weight == 0.0:
            continue
        src_rows = (rows + dy[:, i].view(batch, 1, 1)).clamp(0, height - 1)
        src_cols = (cols + dx[:, i].view(batch, 1, 1)).clamp(0, width - 1)
        index = (src_rows * width + src_cols).view(batch, 1, height * width).expand(batch, channels, -1)
        out = out + weight * flat.gather(2, index)
    return out.view(batch, channels, height, width)


def line_offsets(length: int, angles_deg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageMagick's motion-blur tap offsets: tap i sits at round(i * (cos, sin) of the angle)."""
    taps = torch.arange(length, dtype=torch.float64, device=angles_deg.device)
    radians = torch.deg2rad(angles_deg.to(torch.float64)).view(-1, 1)
    dx = torch.ceil(taps * torch.cos(radians) - 0.5).long()
    dy = torch.ceil(taps * torch.sin(radians) - 0.5).long()
    return dy, dx


def directional_blur(x: torch.Tensor, radius: float, sigma: float, angles_deg: torch.Tensor) -> torch.Tensor:
    """ImageMagick ``MotionBlurImage``: one-sided Gaussian along a line at a per-image angle.

    Args:
        x: (B, C, H, W).
        radius: kernel half width; the line has 2 * ceil(radius) + 1 taps.
        sigma: Gaussian sigma along the line, in pixels.
        angles_deg: (B,) direction of the blur in degrees (x right, y down).
    """
    length = 2 * int(math.ceil(radius)) + 1
    sigma = max(sigma, 1e-12)
    taps = torch.arange(length, dtype=torch.float64)
    weights = torch.exp(-taps * taps / (2.0 * sigma * sigma))
    weights = weights / weights.sum()
    weights = torch.where(weights < 1e-9, torch.zeros_like(weights), weights)
    dy, dx = line_offsets(length, angles_deg)
    return shift_sum(x, weights, dy, dx)
