"""Tests for supcon.augment: batched per-sample augmentation pipelines."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supcon.augment import (
    AUGMENTATIONS,
    Normalize,
    PerSamplePolicy,
    build_augmentation,
    make_views,
    to_float_images,
)

RANDOM_NAMES = tuple(n for n in AUGMENTATIONS if n != "none")
SHAPES = {3: (4, 3, 16, 16), 1: (4, 1, 8, 8)}


def _images(channels: int, seed: int = 0) -> torch.Tensor:
    """Textured images: a smooth per-image gradient plus noise, so crops and flips change pixels."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = SHAPES[channels]
    ramp = torch.linspace(0, 1, w).expand(h, w) * torch.linspace(0.2, 1, h)[:, None]
    base = ramp.expand(b, c, h, w) * torch.rand(b, c, 1, 1, generator=g)
    return (0.7 * base + 0.3 * torch.rand(b, c, h, w, generator=g)).clamp(0, 1)


def test_augmentations_names() -> None:
    assert AUGMENTATIONS == ("sim", "autoaugment", "randaugment", "stacked", "none")


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_output_shape_dtype_range(name: str, channels: int) -> None:
    torch.manual_seed(0)
    x = _images(channels)
    for size in (x.shape[-1], 6):
        aug = build_augmentation(name, size, channels)
        y = aug(x)
        assert y.shape == (x.shape[0], channels, size, size)
        assert y.dtype == torch.float32
        assert torch.isfinite(y).all()
        assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_views_and_images_get_independent_parameters(name: str, channels: int) -> None:
    torch.manual_seed(1)
    aug = build_augmentation(name, 8, channels)
    x = _images(channels)
    # The same image repeated: every copy must get its own augmentation.
    same = x[:1].expand(8, -1, -1, -1)
    y = aug(same)
    distinct = {tuple(row.flatten().round(decimals=4).tolist()) for row in y}
    assert len(distinct) >= 6, f"{name}: only {len(distinct)} distinct outputs among 8 copies"
    views = make_views(aug, x, 2)
    assert not torch.allclose(views[:, 0], views[:, 1])


@pytest.mark.parametrize("channels", [1, 3])
def test_crops_differ_per_image(channels: int) -> None:
    # Identical-content images through crop only (no jitter, no flip): per-image crops differ.
    torch.manual_seed(2)
    aug = build_augmentation("sim", 8, channels, jitter_strength=0.0, flip=False)
    base = _images(channels)[:1]
    y = aug(base.expand(6, -1, -1, -1))
    diffs = (y[1:] - y[:1]).abs().flatten(1).amax(dim=1)
    assert (diffs > 1e-4).sum() >= 4


@pytest.mark.parametrize("name", RANDOM_NAMES)
def test_reproducible_with_seed_and_differs_across_seeds(name: str) -> None:
    x = _images(3)
    aug = build_augmentation(name, 8, 3)
    torch.manual_seed(123)
    a = aug(x)
    torch.manual_seed(123)
    b = aug(x)
    torch.manual_seed(124)
    c = aug(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("channels", [1, 3])
def test_none_is_identity_when_size_matches(channels: int) -> None:
    x = _images(channels)
    aug = build_augmentation("none", x.shape[-1], channels)
    assert torch.equal(aug(x), x)
    # Deterministic when resizing too.
    small = build_augmentation("none", 4, channels)
    assert torch.equal(small(x), small(x))
    # A constant image stays constant under the resize.
    flat = torch.full_like(x, 0.25)
    assert torch.allclose(small(flat), torch.full((x.shape[0], channels, 4, 4), 0.25))


def test_none_accepts_uint8() -> None:
    x = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    y = build_augmentation("none", 5, 3)(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, x.float() / 255)


def test_flip_false_never_flips() -> None:
    # A left-to-right ramp through crop + flip only: a mirrored output is darker on its right half.
    ramp = torch.linspace(0, 1, 8).expand(32, 1, 8, 8)
    mirrored = {}
    for flip in (True, False):
        torch.manual_seed(3)
        aug = build_augmentation("sim", 8, 1, crop_scale=(0.5, 1.0), jitter_strength=0.0, flip=flip)
        y = aug(ramp)
        mirrored[flip] = int((y[..., 4:].mean(dim=(1, 2, 3)) < y[..., :4].mean(dim=(1, 2, 3))).sum())
    assert mirrored[False] == 0
    assert 4 <= mirrored[True] <= 28


def test_grayscale_channels_skip_colour_steps() -> None:
    names = lambda aug: {type(m).__name__ for m in aug.modules()}  # noqa: E731
    gray = build_augmentation("sim", 8, 1)
    rgb = build_augmentation("sim", 8, 3)
    assert "RandomGrayscale" not in names(gray)
    assert "RandomGrayscale" in names(rgb)
    jitter = next(m for m in gray.modules() if type(m).__name__ == "ColorJitter")
    assert jitter.saturation == 0 and jitter.hue == 0
    assert jitter.brightness == pytest.approx(0.4) and jitter.contrast == pytest.approx(0.4)


def test_jitter_strength_scales_factors_and_blur_flag() -> None:
    aug = build_augmentation("sim", 32, 3, jitter_strength=0.5, blur=True)
    jitter = next(m for m in aug.modules() if type(m).__name__ == "ColorJitter")
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == pytest.approx(
        (0.2, 0.2, 0.2, 0.05)
    )
    blurs = [m for m in aug.modules() if type(m).__name__ == "RandomGaussianBlur"]
    assert len(blurs) == 1
    k = blurs[0].flags["kernel_size"]
    assert k[0] == k[1] and k[0] % 2 == 1 and k[0] >= 3
    assert not any(type(m).__name__ == "RandomGaussianBlur" for m in build_augmentation("sim", 32, 3).modules())
    assert any(type(m).__name__ == "RandomGaussianBlur" for m in build_augmentation("stacked", 32, 3).modules())


def test_per_sample_policy_draws_distinct_branches_per_image() -> None:
    class AddConstant(nn.Module):
        def __init__(self, value: float) -> None:
            super().__init__()
            self.value = value

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.value

    torch.manual_seed(4)
    policy = PerSamplePolicy([AddConstant(10.0**k) for k in range(4)], steps=2)
    y = policy(torch.zeros(64, 1, 2, 2))
    sums = y[:, 0, 0, 0].round().long().tolist()
    valid = {10**i + 10**j for i in range(4) for j in range(4) if i != j}
    assert set(sums) <= valid  # two distinct branches per image
    assert len(set(sums)) >= 4  # and images got different branches
    assert (y == y[:, :, :1, :1]).all()  # a branch applies to the whole image
    with pytest.raises(ValueError, match="steps"):
        PerSamplePolicy([AddConstant(1.0)], steps=2)


def test_make_views_shape_order_and_uint8() -> None:
    x = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8)
    views = make_views(build_augmentation("none", 8, 1), x, 4)
    assert views.shape == (3, 4, 1, 8, 8)
    assert views.dtype == torch.float32
    # Views of image b are all image b.
    for b in range(3):
        for v in range(4):
            assert torch.allclose(views[b, v], x[b].float() / 255)
    torch.manual_seed(5)
    sim = make_views(build_augmentation("sim", 6, 1), x, 3)
    assert sim.shape == (3, 3, 1, 6, 6)
    assert sim.min() >= 0 and sim.max() <= 1


def test_channels_last_input() -> None:
    x = _images(3).to(memory_format=torch.channels_last)
    for name in AUGMENTATIONS:
        torch.manual_seed(6)
        y = build_augmentation(name, 8, 3)(x)
        torch.manual_seed(6)
        y_ref = build_augmentation(name, 8, 3)(x.contiguous())
        assert y.shape == (4, 3, 8, 8)
        assert torch.allclose(y, y_ref, atol=1e-5), name


def test_sim_handles_demo_batch() -> None:
    torch.manual_seed(7)
    x = torch.randint(0, 17, (256, 1, 8, 8), dtype=torch.uint8) * 15
    views = make_views(build_augmentation("sim", 8, 1, flip=False), x, 2)
    assert views.shape == (256, 2, 1, 8, 8)
    assert torch.isfinite(views).all() and views.min() >= 0 and views.max() <= 1


def test_to_float_images() -> None:
    u = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_float_images(u), torch.tensor([0.0, 0.2, 1.0]))
    f = torch.rand(3)
    assert to_float_images(f) is f
    with pytest.raises(ValueError, match="images"):
        to_float_images(torch.zeros(3, dtype=torch.int64))


def test_normalize() -> None:
    norm = Normalize([0.5, 0.25, 0.0], [0.5, 0.25, 2.0])
    x = torch.rand(2, 3, 4, 4)
    expected = torch.stack([(x[:, 0] - 0.5) / 0.5, (x[:, 1] - 0.25) / 0.25, x[:, 2] / 2.0], dim=1)
    assert torch.allclose(norm(x), expected)
    assert set(dict(norm.named_buffers())) == {"mean", "std"}
    with pytest.raises(ValueError, match="std"):
        Normalize([0.5], [0.0])
    with pytest.raises(ValueError, match="std"):
        Normalize([0.5, 0.5], [0.5])
    with pytest.raises(ValueError, match="mean"):
        Normalize([], [])
    with pytest.raises(ValueError, match="images"):
        norm(torch.rand(2, 1, 4, 4))


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"name": "simclr"}, "name"),
        ({"image_size": 0}, "image_size"),
        ({"channels": 2}, "channels"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_scale": (0.8, 0.2)}, "crop_scale"),
        ({"jitter_strength": -1.0}, "jitter_strength"),
    ],
)
def test_bad_build_arguments(kwargs: dict, argument: str) -> None:
    args = {"name": "sim", "image_size": 8, "channels": 3} | kwargs
    with pytest.raises(ValueError, match=argument) as info:
        build_augmentation(args.pop("name"), args.pop("image_size"), args.pop("channels"), **args)
    if argument == "name":
        for valid in AUGMENTATIONS:
            assert valid in str(info.value)


def test_bad_call_arguments() -> None:
    aug = build_augmentation("sim", 8, 3)
    with pytest.raises(ValueError, match="images"):
        aug(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="n_views"):
        make_views(aug, torch.rand(2, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="images"):
        make_views(aug, torch.rand(3, 8, 8), 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_runs_on_cuda(name: str) -> None:
    x = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, device="cuda")
    views = make_views(build_augmentation(name, 8, 3).cuda(), x, 2)
    assert views.device.type == "cuda"
    assert views.shape == (8, 2, 3, 8, 8)
