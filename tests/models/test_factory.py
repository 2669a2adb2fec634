"""Tests for supcon.models.factory: every architecture by name, width, and argument checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from supcon.models.factory import ARCHITECTURES, build_encoder

EXPECTED_OUT_DIM = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet200": 2048,
    "small": 128,
    "cifar-fast": 192,
    "vit-tiny": 192,
    "vit-small": 384,
}
BIG = {"resnet101", "resnet200"}  # 42M / 62M parameters: 1-2 s idle, over 10 s on a busy CPU


@pytest.mark.parametrize(
    "arch",
    [pytest.param(a, marks=pytest.mark.slow) if a in BIG else a for a in ARCHITECTURES],
)
def test_every_arch_forward_backward(arch: str, forward_backward: Callable[..., torch.Tensor]) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(arch, in_channels=3)
    assert encoder.out_dim == EXPECTED_OUT_DIM[arch]
    out = forward_backward(encoder, torch.randn(2, 3, 8, 8))
    assert out.shape == (2, EXPECTED_OUT_DIM[arch])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch, base", [("resnet18", 512), ("resnet50", 2048), ("small", 128)])
def test_width_multiplies_out_dim(arch: str, base: int) -> None:
    with torch.device("meta"):  # shapes only: a width-2 ResNet-50 has ~94M parameters
        narrow = build_encoder(arch, in_channels=1, width=1)
        wide = build_encoder(arch, in_channels=1, width=2)
        out = wide(torch.randn(2, 1, 8, 8))
    assert wide.out_dim == 2 * base
    assert out.shape == (2, 2 * base)
    n_narrow = sum(p.numel() for p in narrow.parameters())
    n_wide = sum(p.numel() for p in wide.parameters())
    assert 3.5 * n_narrow < n_wide < 4.0 * n_narrow  # conv weights grow with width**2


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"arch": "resnet19"}, "arch"),
        ({"arch": "ResNet18x"}, "arch"),
        ({"arch": "resnet18", "stem": "tiny"}, "stem"),
        ({"arch": "small", "stem": "tiny"}, "stem"),
        ({"arch": "resnet18", "width": 0}, "width"),
        ({"arch": "small", "width": -1}, "width"),
        ({"arch": "resnet18", "width": 1.5}, "width"),
        ({"arch": "resnet18", "in_channels": 0}, "in_channels"),
        ({"arch": "small", "in_channels": True}, "in_channels"),
    ],
)
def test_build_encoder_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        build_encoder(**kwargs)
    bad = next(v for k, v in kwargs.items() if k == name)
    assert repr(bad) in str(info.value)
