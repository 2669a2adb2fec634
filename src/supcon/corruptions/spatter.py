"""The spatter corruption (water splashes, or mud at severities 4 and 5) and the OpenCV steps it uses.

OpenCV's Canny, equalizeHist, emboss and box filters are re-implemented; the distance transform
is the exact Euclidean one instead of OpenCV's 5x5 chamfer approximation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from supcon.corruptions.colour import colour_tensor
from supcon.corruptions.filters import base_hw, correlate, gaussian_filter, resize
from supcon.corruptions.rng import randn
from supcon.corruptions.tables import MUD_RGB, SPATTER, WATER_RGB


def _canny(image: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """OpenCV's Canny (3x3 Sobel, L1 magnitude) of (B, 1, H, W) 8-bit values: bool edge map."""
    image = image.to(torch.float64)  # the direction tests below need exact integers beyond 2**24
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    gx = correlate(image, sobel, "replicate")
    gy = correlate(image, sobel.T, "replicate")
    magnitude = gx.abs() + gy.abs()
    padded = F.pad(magnitude, (1, 1, 1, 1))

    def neighbour(dy: int, dx: int) -> torch.Tensor:
        height, width = magnitude.shape[-2:]
        return padded[..., 1 + dy: 1 + dy + height, 1 + dx: 1 + dx + width]

    ax, ay = gx.abs(), gy.abs()
    tan22 = ax * round(0.4142135623730950488 * (1 << 15))
    horizontal = ay * (1 << 15) < tan22
    vertical = ay * (1 << 15) > tan22 + ax * (1 << 16)
    same_sign = (gx < 0) == (gy < 0)
    keep_horizontal = (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1))
    keep_vertical = (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0))
    keep_diagonal = torch.where(
        same_sign,
        (magnitude > neighbour(-1, -1)) & (magnitude > neighbour(1, 1)),
        (magnitude > neighbour(-1, 1)) & (magnitude > neighbour(1, -1)),
    )
    local_max = torch.where(horizontal, keep_horizontal, torch.where(vertical, keep_vertical, keep_diagonal))
    candidate = local_max & (magnitude > low)
    edges = candidate & (magnitude > high)
    for _ in range(image.shape[-2] * image.shape[-1]):  # hysteresis: grow strong edges through weak ones
        grown = candidate & (F.max_pool2d(edges.to(image.dtype), 3, stride=1, padding=1) > 0)
        if torch.equal(grown, edges):
            break
        edges = grown
    return edges


def _distance_to(mask: torch.Tensor, cap: float) -> torch.Tensor:
    """Euclidean distance of every pixel to the nearest True pixel of mask (B, H, W), capped at cap."""
    _, height, width = mask.shape
    far = float((height + width) ** 2 + cap * cap + 1)
    rows = torch.arange(height, dtype=torch.float64, device=mask.device)
    cols = torch.arange(width, dtype=torch.float64, device=mask.device)
    cost = torch.where(mask, 0.0, far).to(torch.float64)
    # squared distance along columns, then along rows (separable exact EDT)
    column = ((rows[:, None] - rows[None, :]) ** 2)[None, :, :, None] + cost[:, None, :, :]
    column = column.amin(dim=2)
    total = column[:, :, None, :] + ((cols[:, None] - cols[None, :]) ** 2)[None, None]
    return total.amin(dim=-1).sqrt().clamp(max=cap)


def _equalize_hist(values: torch.Tensor) -> torch.Tensor:
    """OpenCV's equalizeHist of (B, 1, H, W) integer values 0..255, per image."""
    batch = values.shape[0]
    flat = values.reshape(batch, -1).long()
    hist = torch.zeros(batch, 256, dtype=torch.float64, device=values.device)
    hist.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    cdf = hist.cumsum(dim=1)
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)
    below = cdf.gather(1, first)
    denominator = flat.shape[1] - below
    lut = torch.round((cdf - below) * (255.0 / denominator.clamp_min(1))).clamp(0, 255)
    identity = torch.arange(256, dtype=torch.float64, device=values.device).expand(batch, 256)
    lut = torch.where(denominator > 0, lut, identity)  # a constant image stays as it is
    return lut.gather(1, flat).view(values.shape).to(values.dtype)


def spatter(x: torch.Tensor, severity: int, generator: torch.Generator | None) -> torch.Tensor:
    """Water splashes (severities 1-3) or mud (4-5) from a thresholded, smoothed liquid layer."""
    loc, scale, sigma, threshold, strength, mud = SPATTER[severity - 1]
    batch, channels, height, width = x.shape
    base_h, base_w = base_hw(height, width)
    liquid = loc + scale * randn((batch, 1, base_h, base_w), generator, x)
    liquid = gaussian_filter(liquid, sigma)
    liquid = torch.where(liquid < threshold, torch.zeros_like(liquid), liquid)
    if mud:
        mask = resize(gaussian_filter((liquid > threshold).to(x.dtype), strength), (height, width))
        mask = torch.where(mask < 0.8, torch.zeros_like(mask), mask)
        return x * (1 - mask) + colour_tensor(MUD_RGB, channels, x) * mask
    liquid = torch.floor(liquid * 255).clamp(0, 255)
    edges = _canny(liquid, 50.0, 150.0)
    box = torch.full((3, 3), 1.0 / 9.0, dtype=torch.float64)
    emboss = torch.tensor([[-2.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    dist = _distance_to(edges[:, 0], 20.0).unsqueeze(1).to(x.dtype)
    dist = torch.floor(correlate(dist, box, "reflect101"))
    dist = _equalize_hist(dist)
    dist = torch.round(correlate(dist, emboss, "reflect101")).clamp(0, 255)
    dist = torch.round(correlate(dist, box, "reflect101"))
    water = liquid * dist
    peak = water.amax(dim=(1, 2, 3), keepdim=True)
    water = torch.where(peak > 0, water / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(water))
    water = resize(water * strength, (height, width))
    return x + water * colour_tensor(WATER_RGB, channels, x)
