"""Tests for supcon.corruptions.digital: contrast formula, brightness and saturation against colorsys,
pixelate against PIL's box filter, the saturate trend and the elastic distortion's growth."""

from __future__ import annotations

import colorsys

import pytest
import torch
from corruption_cases import mean_abs_diffs, pil_roundtrip, scene
from PIL import Image

from supcon.corruptions import corrupt


def test_saturate_severity_trend():
    # published (factor, offset): (.3,0) (.1,0) desaturate, (1.5,0) (2,.1) (2.5,.2) oversaturate
    d = mean_abs_diffs("saturate", "rgb32")
    assert d[0] < d[1], d
    assert d[2] <= d[3] <= d[4], d
    grey = mean_abs_diffs("saturate", "grey28")
    assert grey[3] < grey[4], grey


def test_elastic_local_distortion_grows_with_severity():
    # The published affine jitter shrinks with severity (8%, 7%, 6%, 5%, 3% of the size) while the
    # local displacement grows, so the plain difference to the clean image falls. On a linear ramp
    # an affine warp and bilinear sampling keep the centre planar: the residual of a plane fit
    # measures the non-affine (elastic) part alone.
    size = 32
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    ramp = (0.2 + 0.4 * xx / (size - 1) + 0.3 * yy / (size - 1)).expand(4, 1, size, size).clone()
    centre = slice(8, 24)
    design = torch.stack([xx[centre, centre].flatten(), yy[centre, centre].flatten(),
                          torch.ones(256, dtype=torch.float64)], dim=1)
    residuals = []
    for severity in range(1, 6):
        out = corrupt(ramp, "elastic_transform", severity, generator=torch.Generator().manual_seed(0))
        values = out[:, 0, centre, centre].reshape(4, 256, 1)
        fit = torch.linalg.lstsq(design.expand(4, 256, 3), values).solution
        residuals.append((design @ fit - values).abs().mean().item())
        assert (out - ramp).abs().mean() > 1e-3  # the affine part moves the image at every severity
    assert residuals[0] < 1e-9, residuals  # severity 1 is a pure affine warp
    assert all(residuals[k] < residuals[k + 1] for k in range(4)), residuals


def test_contrast_formula():
    images = scene(2, 3, 16, 16).double()
    means = images.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(corrupt(images, "contrast", 4), ((images - means) * 0.3 + means).clamp(0, 1))


@pytest.mark.parametrize("name, severity", [("brightness", 2), ("brightness", 5), ("saturate", 2), ("saturate", 5)])
def test_hsv_corruptions_match_colorsys(name, severity):
    images = scene(2, 3, 6, 6).double()
    images[0, :, 0, 0] = 0.0  # black pixel: hue and saturation undefined
    images[0, :, 0, 1] = torch.tensor([0.5, 0.5, 0.2])  # tie between red and green
    out = corrupt(images, name, severity)
    brightness = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    factor, offset = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    expected = torch.empty_like(images)
    for b in range(2):
        for i in range(6):
            for j in range(6):
                h, s, v = colorsys.rgb_to_hsv(*images[b, :, i, j].tolist())
                if name == "brightness":
                    v = min(max(v + brightness, 0.0), 1.0)
                else:
                    s = min(max(s * factor + offset, 0.0), 1.0)
                expected[b, :, i, j] = torch.tensor(colorsys.hsv_to_rgb(h, s, v))
    torch.testing.assert_close(out, expected.clamp(0, 1))


@pytest.mark.parametrize("layout", [(2, 3, 32, 32), (2, 1, 28, 28), (1, 3, 17, 23)])
def test_pixelate_matches_pil_box(layout):
    images = torch.round(scene(*layout) * 255).to(torch.uint8)
    height, width = layout[2:]
    for severity, ratio in enumerate((0.95, 0.9, 0.85, 0.75, 0.65), start=1):
        size = (int(width * ratio), int(height * ratio))
        expected = pil_roundtrip(images, lambda p: p.resize(size, Image.BOX).resize((width, height), Image.BOX))
        diff = (corrupt(images, "pixelate", severity).int() - expected.int()).abs()
        assert diff.max() <= 1, severity  # PIL rounds to 8 bits between its two passes
