"""Tests for supcon.simaugment: SimAugment's batched ops keep torchvision's semantics and distribution.

References are written per image from the definitions (torchvision's RandomResizedCrop sampling,
``F.interpolate(antialias=True)`` for the resize, torchvision's ColorJitter formulas, Python's
``colorsys`` for HSV); distributions are checked over many images with wide statistical margins
(each bound is more than 5 standard deviations from the expected value).
"""

from __future__ import annotations

import colorsys
import math
from itertools import permutations

import pytest
import torch
import torch.nn.functional as F

from supcon.augment import build_augmentation
from supcon.simaugment import (CROP_TRIES, LUMA, ColorJitter, RandomGrayscale, RandomResizedCropFlip, crop_boxes,
                               resize_weights)
from supcon.simaugment import _hue as hue_shift

SCALE = (0.2, 1.0)
RATIO = (3 / 4, 4 / 3)


def _images(n: int, channels: int = 3, size: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, channels, size, size, generator=g)


def _draw_boxes(n: int, height: int, width: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return crop_boxes(torch.rand(n, CROP_TRIES, 4, generator=g), height, width, SCALE, RATIO)


def test_crop_boxes_fit_and_follow_scale_and_ratio() -> None:
    top, left, h, w = _draw_boxes(20_000, 32, 32)
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).double() / (32 * 32)
    # Integer rounding of w and h moves the area by at most about one row and one column.
    assert area.min() >= 0.2 - 2 * 32 / 1024 and area.max() <= 1.0
    aspect = (w / h).double()
    assert aspect.min() >= 3 / 4 * (1 - 2 / 8) and aspect.max() <= 4 / 3 * (1 + 2 / 8)
    # Unrounded, the area is uniform on [0.2, 1] (mean 0.6) among tries that fit; big crops with an
    # extreme ratio do not fit a square image, so the mean is a little lower.
    assert 0.5 < area.mean() < 0.6
    # Offsets are uniform over the valid positions: small crops land in every corner.
    small = h <= 16
    assert top[small].min() == 0 and (top + h)[small].max() == 32


def test_crop_boxes_match_torchvision_sampling_in_distribution() -> None:
    import random

    rng = random.Random(0)

    def torchvision_box(height: int, width: int) -> tuple[int, int]:  # RandomResizedCrop.get_params
        area = height * width
        for _ in range(CROP_TRIES):
            target = area * rng.uniform(*SCALE)
            aspect = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return h, w
        return height, width

    ref = torch.tensor([torchvision_box(24, 40) for _ in range(20_000)], dtype=torch.float64)
    _, _, h, w = _draw_boxes(20_000, 24, 40, seed=1)
    ours = torch.stack([h, w], dim=1).double()
    for k in range(2):  # means within a few standard errors of each other
        se = math.sqrt(ref[:, k].var() / len(ref) + ours[:, k].var() / len(ours))
        assert abs(ref[:, k].mean() - ours[:, k].mean()) < 5 * se
    area_ref, area_ours = ref.prod(1), ours.prod(1)
    assert abs(area_ref.mean() - area_ours.mean()) < 5 * math.sqrt(2 * area_ref.var() / len(ref))


def test_crop_boxes_fall_back_to_a_centre_crop() -> None:
    # Draws that never fit (an aspect ratio far beyond the image's) give the clamped centre crop.
    u = torch.zeros(3, CROP_TRIES, 4)
    u[..., 0] = 1.0  # area fraction 1 ...
    u[..., 1] = 0.999  # ... and ratio near 4/3: too wide for a 10 x 10 image in every try
    top, left, h, w = crop_boxes(u, 10, 10, SCALE, RATIO)
    assert h.tolist() == [10] * 3 and w.tolist() == [10] * 3 and top.tolist() == [0] * 3
    top, left, h, w = crop_boxes(u, 10, 40, SCALE, RATIO)  # wide image: ratio clamped to 4/3
    assert w.tolist() == [13] * 3 and h.tolist() == [10] * 3 and left.tolist() == [13] * 3


@pytest.mark.parametrize(("start", "length", "in_size", "out_size"),
                         [(3, 9, 16, 16), (0, 16, 16, 16), (5, 11, 16, 7), (0, 30, 32, 8), (2, 1, 8, 5)])
def test_resize_weights_are_antialiased_bilinear_interpolation(start, length, in_size, out_size) -> None:
    x = torch.rand(2, in_size, dtype=torch.float64, generator=torch.Generator().manual_seed(start))
    weights = resize_weights(torch.tensor([start]), torch.tensor([length]), in_size, out_size)[0].double()
    crop = x[:, start:start + length].view(2, 1, 1, length)
    expected = F.interpolate(crop, size=(1, out_size), mode="bilinear", antialias=True, align_corners=False)
    # The weights are float32: agreement to float32 precision.
    torch.testing.assert_close(x @ weights.T, expected.view(2, out_size), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(weights.sum(1), torch.ones(out_size, dtype=torch.float64), atol=1e-6, rtol=0)


def test_crop_flip_equals_crop_then_resize_then_flip() -> None:
    x = _images(6, size=20)
    aug = RandomResizedCropFlip(16, SCALE, RATIO, flip_p=0.5)
    torch.manual_seed(5)
    out = aug(x)
    torch.manual_seed(5)
    u = torch.rand(6, CROP_TRIES * 4 + 1)
    top, left, h, w = crop_boxes(u[:, :-1].view(6, CROP_TRIES, 4), 20, 20, SCALE, RATIO)
    for i in range(6):
        crop = x[i:i + 1, :, top[i]:top[i] + h[i], left[i]:left[i] + w[i]]
        expected = F.interpolate(crop, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)[0]
        if u[i, -1] < 0.5:
            expected = expected.flip(-1)
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=1e-5)


def test_flip_probability_and_no_flip() -> None:
    ramp = torch.linspace(0, 1, 8).expand(4000, 1, 8, 8).contiguous()
    torch.manual_seed(0)
    y = RandomResizedCropFlip(8, (1.0, 1.0), (1.0, 1.0), flip_p=0.5)(ramp)  # the whole image, square
    flipped = (y[..., 0] > y[..., -1]).all(dim=-1).squeeze(1).double()
    assert abs(flipped.mean().item() - 0.5) < 5 * math.sqrt(0.25 / 4000)
    torch.testing.assert_close(y[flipped == 0], ramp[flipped == 0])
    y = RandomResizedCropFlip(8, (1.0, 1.0), (1.0, 1.0), flip_p=0.0)(ramp)
    torch.testing.assert_close(y, ramp)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (LUMA[0] * x[0] + LUMA[1] * x[1] + LUMA[2] * x[2]).unsqueeze(0) if x.shape[0] == 3 else x


def _hue_reference(x: torch.Tensor, shift: float) -> torch.Tensor:
    """colorsys per pixel: RGB -> HSV, rotate the hue, HSV -> RGB."""
    out = torch.empty_like(x)
    for i in range(x.shape[1]):
        for j in range(x.shape[2]):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j].tolist())
            out[:, i, j] = torch.tensor(colorsys.hsv_to_rgb((h + shift) % 1.0, s, v), dtype=x.dtype)
    return out


def _jitter_reference(x: torch.Tensor, factors: torch.Tensor, order: list[int]) -> torch.Tensor:
    """torchvision's ColorJitter on one image with the given factors, in the given op order."""
    for op in order:
        f = float(factors[op])
        if op == 0:
            x = (f * x).clamp(0, 1)
        elif op == 1:
            x = (f * x + (1 - f) * _gray(x).mean()).clamp(0, 1)
        elif op == 2:
            x = (f * x + (1 - f) * _gray(x)).clamp(0, 1)
        else:
            x = _hue_reference(x, f)
    return x


def test_hue_matches_colorsys() -> None:
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x[0, :, 0, 0] = 0.5  # a grey pixel: no hue
    x[1, :, 1, :] = torch.tensor([0.9, 0.9, 0.1]).view(3, 1)  # ties between channels
    shifts = torch.tensor([0.1, -0.1, 0.5, -0.37], dtype=torch.float64)
    ours = hue_shift(x, shifts)
    for i in range(4):
        torch.testing.assert_close(ours[i], _hue_reference(x[i], float(shifts[i])), atol=1e-9, rtol=0)


def test_colour_jitter_matches_torchvision_formulas_per_image() -> None:
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)
    x = _images(24, size=5)
    torch.manual_seed(3)
    out = jitter(x)
    torch.manual_seed(3)
    chosen, factors, order = jitter.draw(24)
    expected = x.clone()
    for row, index in enumerate(chosen.tolist()):
        expected[index] = _jitter_reference(x[index], factors[row], order[row].tolist())
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_colour_jitter_distribution() -> None:
    n = 8000
    jitter = ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)
    torch.manual_seed(0)
    chosen, factors, order = jitter.draw(n)
    assert abs(len(chosen) / n - 0.8) < 5 * math.sqrt(0.16 / n)  # applied with probability 0.8
    for k in range(3):
        assert 0.6 <= factors[:, k].min() and factors[:, k].max() <= 1.4
        assert abs(factors[:, k].mean() - 1.0) < 0.02
    assert -0.1 <= factors[:, 3].min() and factors[:, 3].max() <= 0.1 and abs(factors[:, 3].mean()) < 0.005
    # The order is drawn per image: every permutation of the four ops, each about 1/24 of the time.
    counts = {perm: 0 for perm in permutations(range(4))}
    for row in order.tolist():
        counts[tuple(row)] += 1
    expected = len(chosen) / 24
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in counts.values()), counts
    # Images that were not drawn for jitter come out unchanged, the others changed.
    x = _images(n, size=4)
    torch.manual_seed(0)
    y = jitter(x)
    changed = (y - x).abs().flatten(1).amax(1) > 0
    assert changed.sum() == len(chosen) and changed[chosen].all()


def test_colour_jitter_skips_zero_strengths_and_grey_images() -> None:
    jitter = ColorJitter(0.4, 0.4, 0.0, 0.0, p=1.0, channels=1)
    assert jitter.enabled == [0, 1]
    x = _images(200, channels=1, size=4)
    torch.manual_seed(1)
    y = jitter(x)
    torch.manual_seed(1)
    chosen, factors, order = jitter.draw(200)
    assert order.shape == (200, 2) and {tuple(r) for r in order.tolist()} == {(0, 1), (1, 0)}
    for i in range(0, 200, 37):
        torch.testing.assert_close(y[i], _jitter_reference(x[i], factors[i], order[i].tolist()), atol=1e-6, rtol=0)
    none = ColorJitter(0.0, 0.0, 0.0, 0.0)
    assert torch.equal(none(x.expand(-1, 3, -1, -1)), x.expand(-1, 3, -1, -1))
    with pytest.raises(ValueError, match="saturation and hue need 3 channels"):
        ColorJitter(0.4, 0.4, 0.4, 0.1, channels=1)
    with pytest.raises(ValueError, match="hue"):
        ColorJitter(0.4, 0.4, 0.4, 0.6)


def test_grayscale_probability_and_luma() -> None:
    x = _images(6000, size=3)
    torch.manual_seed(2)
    y = RandomGrayscale(p=0.2)(x)
    gray = (y[:, 0] == y[:, 1]).all(dim=(1, 2)) & (y[:, 1] == y[:, 2]).all(dim=(1, 2))
    assert abs(gray.double().mean().item() - 0.2) < 5 * math.sqrt(0.16 / 6000)
    luma = (LUMA[0] * x[:, 0] + LUMA[1] * x[:, 1] + LUMA[2] * x[:, 2])
    torch.testing.assert_close(y[gray][:, 0], luma[gray])
    assert torch.equal(y[~gray], x[~gray])


def _seeded(aug, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``aug(x)`` right after ``torch.manual_seed(seed)``: the views that seed draws."""
    torch.manual_seed(seed)
    return aug(x)


def _sim_case(n: int, size: int):
    """A batch of random uint8 RGB images and the "sim" pipeline for their size."""
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8), build_augmentation("sim", size, 3)


def test_sim_pipeline_is_reproducible_and_identical_across_thread_counts() -> None:
    x, aug = _sim_case(64, 32)
    a = _seeded(aug, x, 11)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        b = _seeded(aug, x, 11)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    assert torch.equal(_seeded(aug, x, 11), a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_batch_without_host_syncs() -> None:
    # Parameters are drawn on the CPU from the global RNG: the same seed gives the same views on
    # both devices, and the CUDA run never waits for the device.
    x, aug = _sim_case(32, 16)
    cpu = _seeded(aug, x, 21)
    x_cuda = x.cuda()
    _seeded(aug, x_cuda, 21)  # warm-up (kernels load)
    torch.manual_seed(21)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        cuda = aug(x_cuda)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(cuda.cpu(), cpu, atol=1e-4, rtol=0)
