"""Tests for supcon.corruptions.blur: gaussian, defocus and zoom blur against scipy, the motion-blur
line, and the glass-blur severity trend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corruption_cases import LAYOUTS, mean_abs_diffs, scene
from scipy import ndimage

from supcon.corruptions import corrupt


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_glass_blur_severity_trend(layout):
    # the published table is (sigma, delta, iterations) = (.05,1,1) (.25,1,1) (.4,1,1) (.25,1,2) (.4,1,2):
    # within one iteration count a wider blur smooths the shuffle noise away again, so only the
    # second shuffling iteration (severities 4, 5) is a reliable step up
    d = mean_abs_diffs("glass_blur", layout)
    assert min(d[3], d[4]) > max(d[0], d[1], d[2]), d


def test_gaussian_blur_matches_scipy():
    images = scene(2, 3, 32, 32).double()
    for severity, sigma in enumerate((0.4, 0.6, 0.7, 0.8, 1.0), start=1):
        expected = ndimage.gaussian_filter(images.numpy(), sigma=(0, 0, sigma, sigma), mode="nearest", truncate=4.0)
        torch.testing.assert_close(corrupt(images, "gaussian_blur", severity), torch.from_numpy(expected))


def _reference_disk(radius: float, alias_blur: float) -> np.ndarray:
    grid = np.arange(-8, 9)
    disk = ((grid[:, None] ** 2 + grid[None, :] ** 2) <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * alias_blur ** 2))
    taps /= taps.sum()
    return ndimage.correlate(disk, np.outer(taps, taps), mode="mirror")


def test_defocus_blur_matches_disk_filter():
    images = scene(2, 3, 32, 32).double()
    for severity, (radius, alias) in enumerate([(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)], 1):
        kernel = _reference_disk(radius, alias)
        expected = np.stack([[ndimage.correlate(ch, kernel, mode="mirror") for ch in img] for img in images.numpy()])
        torch.testing.assert_close(corrupt(images, "defocus_blur", severity), torch.from_numpy(expected).clamp(0, 1))


def _reference_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    side = image.shape[0]
    crop = int(np.ceil(side / zoom))
    top = (side - crop) // 2
    zoomed = ndimage.zoom(image[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - side) // 2
    return zoomed[trim:trim + side, trim:trim + side]


@pytest.mark.parametrize("layout", [(1, 3, 32, 32), (1, 1, 28, 28)])
def test_zoom_blur_matches_scipy_zoom(layout):
    images = scene(*layout).double()
    hwc = images[0].permute(1, 2, 0).numpy()
    for severity, stop in enumerate((1.06, 1.11, 1.16, 1.21, 1.26), start=1):
        factors = np.arange(1, stop, 0.01)
        expected = (hwc + sum(_reference_clipped_zoom(hwc, z) for z in factors)) / (len(factors) + 1)
        out = corrupt(images, "zoom_blur", severity)[0].permute(1, 2, 0)
        torch.testing.assert_close(out, torch.from_numpy(expected).clamp(0, 1))


def test_motion_blur_is_a_one_sided_gaussian_line():
    images = torch.zeros(3, 1, 32, 32, dtype=torch.float64)
    images[:, :, 16, 16] = 1.0
    taps = torch.exp(-torch.arange(13, dtype=torch.float64) ** 2 / 2)  # severity 1: radius 6, sigma 1
    out = corrupt(images, "motion_blur", 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out[:, 0, 16, 16], torch.full((3,), 1 / taps.sum().item(), dtype=torch.float64))
    torch.testing.assert_close(out.sum(dim=(1, 2, 3)), torch.ones(3, dtype=torch.float64))
    # the impulse is smeared to one side only: (almost) nothing lands right of the impulse, since
    # the angle is within +-45 degrees and tap i reads the pixel i steps along that direction
    assert out[:, 0, :, 17:].sum() < 1e-12
    assert (out[:, 0, :, :16].sum(dim=(1, 2)) > 0.3).all()
