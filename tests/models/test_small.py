"""Tests for supcon.models.small: the small CNN on tiny grey images."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from supcon.models.factory import build_encoder
from supcon.models.networks import model_signature


def test_small_width_forward(forward_backward: Callable[..., torch.Tensor]) -> None:
    wide = build_encoder("small", in_channels=1, width=2)
    assert forward_backward(wide, torch.randn(2, 1, 8, 8)).shape == (2, 256)


@pytest.mark.parametrize("size", [8, 28])
def test_small_cnn_on_tiny_grey_images(size: int, forward_backward: Callable[..., torch.Tensor]) -> None:
    encoder = build_encoder("small", in_channels=1)
    out = forward_backward(encoder, torch.randn(4, 1, size, size))
    assert out.shape == (4, 128)


def test_small_ignores_stem() -> None:
    torch.manual_seed(0)
    a = build_encoder("small", in_channels=1, stem="cifar")
    torch.manual_seed(0)
    b = build_encoder("small", in_channels=1, stem="imagenet")
    x = torch.randn(3, 1, 8, 8)
    a.eval()
    b.eval()
    torch.testing.assert_close(a(x), b(x))
    assert model_signature(a) == model_signature(b)
