"""Tests for supcon.corruptions.filters: border modes against numpy, the Gaussian filter against scipy,
sizes, resampling matrices and the motion-blur line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from supcon.corruptions.filters import (
    base_hw,
    border_index,
    clipped_zoom,
    correlate,
    directional_blur,
    gaussian_filter,
    pad,
    pil_box_weights,
    resize,
    spatial_scale,
)

NUMPY_MODES = {"replicate": "edge", "reflect101": "reflect", "symmetric": "symmetric"}
SCIPY_MODES = {"replicate": "nearest", "reflect101": "mirror", "symmetric": "reflect"}


@pytest.mark.parametrize("mode", list(NUMPY_MODES))
@pytest.mark.parametrize("n", [1, 2, 5])
def test_border_index_matches_numpy_pad(mode, n):
    for before, after in [(0, 0), (1, 2), (3, 0), (7, 9)]:  # wider than the axis too
        expected = np.pad(np.arange(n), (before, after), mode=NUMPY_MODES[mode])
        assert border_index(n, before, after, mode, torch.device("cpu")).tolist() == expected.tolist()


def test_border_index_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        border_index(4, 1, 1, "wrap", torch.device("cpu"))


def test_pad_pads_the_last_two_axes():
    x = torch.arange(12.0).view(1, 1, 3, 4)
    expected = np.pad(x.numpy(), ((0, 0), (0, 0), (1, 2), (3, 0)), mode="symmetric")
    torch.testing.assert_close(pad(x, 1, 2, 3, 0, "symmetric"), torch.from_numpy(expected))


@pytest.mark.parametrize("mode", list(SCIPY_MODES))
def test_gaussian_filter_matches_scipy(mode):
    x = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for sigma, truncate in [(0.7, 4.0), (1.6, 3.0)]:
        expected = ndimage.gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode=SCIPY_MODES[mode],
                                           truncate=truncate)
        torch.testing.assert_close(gaussian_filter(x, sigma, truncate, mode), torch.from_numpy(expected))
    assert gaussian_filter(x, 0.0) is x  # no blur at sigma 0


def test_correlate_matches_scipy_correlate():
    x = torch.rand(1, 2, 9, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kernel = torch.rand(3, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64) - 0.5  # asymmetric
    expected = np.stack([ndimage.correlate(ch, kernel.numpy(), mode="mirror") for ch in x[0].numpy()])
    torch.testing.assert_close(correlate(x, kernel, "reflect101")[0], torch.from_numpy(expected))


def test_sizes():
    assert spatial_scale(28, 28) == 1.0 and spatial_scale(8, 8) == 1.0
    assert spatial_scale(64, 96) == 2.0
    assert base_hw(28, 30) == (28, 30)
    assert base_hw(64, 96) == (32, 48)


def test_resize_keeps_an_image_of_the_target_size():
    x = torch.rand(1, 3, 8, 8)
    assert resize(x, (8, 8)) is x
    assert resize(x, (16, 12)).shape == (1, 3, 16, 12)
    torch.testing.assert_close(resize(torch.full((1, 1, 8, 8), 0.25), (3, 5)), torch.full((1, 1, 3, 5), 0.25))


def test_clipped_zoom_by_one_is_the_identity():
    x = torch.rand(2, 3, 9, 7, dtype=torch.float64)
    torch.testing.assert_close(clipped_zoom(x, 1.0), x)


@pytest.mark.parametrize("sizes", [(32, 30), (28, 18), (7, 7), (10, 23)])
def test_pil_box_weights_rows_are_averages(sizes):
    weights = pil_box_weights(*sizes)
    assert weights.shape == sizes[::-1]
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)


def test_directional_blur_keeps_the_mean_of_a_constant_image():
    x = torch.full((2, 1, 12, 12), 0.5, dtype=torch.float64)
    out = directional_blur(x, 3.0, 1.5, torch.tensor([0.0, 30.0]))
    torch.testing.assert_close(out, x)
