"""Tests for supcon.corruptions.registry: names and groups, the output contract of every
corruption, severity trends, determinism, other inputs, argument errors, corrupt_dataset and CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from corruption_cases import ALL, DTYPES, LAYOUTS, RANDOM, clean_images, mean_abs_diffs, outputs, scene, to_unit

from supcon.corruptions import CORRUPTION_GROUPS, CORRUPTIONS, EXTRA_CORRUPTIONS, corrupt, corrupt_dataset


# ------------------------------------------------------------------------------------ names
def test_names_and_groups():
    assert CORRUPTIONS == ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
                           "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
                           "elastic_transform", "pixelate", "jpeg_compression")
    assert EXTRA_CORRUPTIONS == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert set(CORRUPTION_GROUPS) == {"noise", "blur", "weather", "digital", "extra"}
    grouped = [n for group in CORRUPTION_GROUPS.values() for n in group]
    assert sorted(grouped) == sorted(ALL)  # each corruption in exactly one group
    assert CORRUPTION_GROUPS["extra"] == EXTRA_CORRUPTIONS


# ------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ALL)
def test_output_contract(name, layout, dtype):
    images = clean_images(layout, dtype)
    for severity, out in enumerate(outputs(name, layout, dtype), start=1):
        assert out.shape == images.shape, severity
        assert out.dtype == images.dtype, severity
        assert out.device == images.device, severity
        if out.is_floating_point():
            assert torch.isfinite(out).all(), severity
            assert out.min() >= 0 and out.max() <= 1, severity


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", ALL)
def test_changes_the_image(name, layout, dtype):
    clean = to_unit(clean_images(layout, dtype))
    for severity, out in enumerate(outputs(name, layout, dtype), start=1):
        diff = (to_unit(out) - clean).abs().mean().item()
        if name == "saturate" and layout == "grey28" and severity <= 3:
            # grey has zero saturation, and severities 1-3 only scale saturation
            assert diff < 1e-6, severity
        else:
            assert diff > 0, severity


# ------------------------------------------------------------------------------------ severity
NON_MONOTONE = {"glass_blur", "frost", "elastic_transform", "spatter", "saturate"}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", sorted(set(ALL) - NON_MONOTONE))
def test_change_grows_with_severity(name, layout):
    d = mean_abs_diffs(name, layout)
    # 5% slack: some published steps are nearly flat (motion_blur 3->4 differs only in radius, snow 2->3)
    for k in range(4):
        assert d[k + 1] >= 0.95 * d[k], f"severity {k + 2} changes less than {k + 1}: {d}"
    assert d[4] > d[0], d


# ------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("name", ALL)
def test_deterministic_given_generator(name):
    images = scene(2, 3, 32, 32)
    first = corrupt(images, name, 3, generator=torch.Generator().manual_seed(7))
    again = corrupt(images, name, 3, generator=torch.Generator().manual_seed(7))
    other = corrupt(images, name, 3, generator=torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    if name in RANDOM:
        assert not torch.equal(first, other)
    else:
        assert torch.equal(first, other)


def test_default_generator_follows_global_seed():
    images = scene(2, 3, 16, 16)
    torch.manual_seed(3)
    first = corrupt(images, "gaussian_noise", 2)
    torch.manual_seed(3)
    assert torch.equal(first, corrupt(images, "gaussian_noise", 2))


def test_draws_advance_the_generator():
    images = scene(2, 3, 16, 16)
    gen = torch.Generator().manual_seed(0)
    assert not torch.equal(corrupt(images, "shot_noise", 3, generator=gen),
                           corrupt(images, "shot_noise", 3, generator=gen))


# ------------------------------------------------------------------------------------ other inputs
@pytest.mark.parametrize("name", ALL)
def test_other_sizes_and_dtypes(name):
    cases = [scene(1, 3, 8, 8), scene(2, 3, 17, 23), scene(1, 1, 40, 36),
             scene(2, 3, 32, 32).double(), scene(2, 1, 12, 12).half()]
    for images in cases:
        out = corrupt(images, name, 5, generator=torch.Generator().manual_seed(0))
        assert out.shape == images.shape and out.dtype == images.dtype
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_empty_batch():
    images = torch.zeros(0, 3, 32, 32, dtype=torch.uint8)
    assert corrupt(images, "fog", 2).shape == (0, 3, 32, 32)


# ------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("severity", [0, 6, -1, "3", 3.0, True, None])
def test_bad_severity(severity):
    with pytest.raises(ValueError, match="severity"):
        corrupt(scene(1, 3, 8, 8), "contrast", severity)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="gaussian_noise") as info:
        corrupt(scene(1, 3, 8, 8), "rain", 1)
    assert "saturate" in str(info.value) and "'rain'" in str(info.value)


@pytest.mark.parametrize("images", [torch.zeros(2, 2, 8, 8), torch.zeros(3, 8, 8),
                                    torch.zeros(1, 3, 8, 8, dtype=torch.int32), np.zeros((1, 3, 8, 8))])
def test_bad_images(images):
    with pytest.raises(ValueError, match="images"):
        corrupt(images, "contrast", 1)


# ------------------------------------------------------------------------------------ datasets
def test_corrupt_dataset_is_reproducible():
    images = torch.round(scene(5, 3, 16, 16) * 255).to(torch.uint8)
    first = corrupt_dataset(images, "gaussian_noise", 2, seed=1, batch_size=2)
    assert first.shape == images.shape and first.dtype == torch.uint8
    assert torch.equal(first, corrupt_dataset(images, "gaussian_noise", 2, seed=1, batch_size=2))
    assert not torch.equal(first, corrupt_dataset(images, "gaussian_noise", 2, seed=2, batch_size=2))
    # each (name, severity) combination draws its own noise, not a rescaled copy of another's
    sev2, sev3 = (corrupt_dataset(images.double() / 255, "gaussian_noise", s, seed=1) for s in (2, 3))
    noise2, noise3 = (sev2 - images / 255) / 0.06, (sev3 - images / 255) / 0.08
    assert not torch.allclose(noise2, noise3, atol=0.1)


def test_corrupt_dataset_equals_corrupt_for_deterministic_corruptions():
    images = scene(5, 3, 16, 16)
    torch.testing.assert_close(corrupt_dataset(images, "contrast", 3, batch_size=2), corrupt(images, "contrast", 3))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"seed": "0"}, {"severity": 0}, {"name": "blur"}])
def test_corrupt_dataset_errors(kwargs):
    args = {"name": "contrast", "severity": 1, **kwargs}
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        corrupt_dataset(scene(2, 3, 8, 8), args.pop("name"), args.pop("severity"), **args)


# ------------------------------------------------------------------------------------ CUDA
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_cuda(name):
    images = torch.round(scene(2, 3, 32, 32) * 255).to(torch.uint8)
    out = corrupt(images.cuda(), name, 4, generator=torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda" and out.dtype == torch.uint8 and out.shape == images.shape
    # a CPU generator with CUDA images gives the CPU result
    on_cpu = corrupt(images, name, 4, generator=torch.Generator().manual_seed(0))
    mixed = corrupt(images.cuda(), name, 4, generator=torch.Generator().manual_seed(0)).cpu()
    assert (mixed.int() - on_cpu.int()).abs().float().mean() < 0.5
