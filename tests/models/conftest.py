"""Fixtures shared by the model tests (the session-wide single CPU thread is set in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


def _forward_backward(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = encoder(x)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
    return out


@pytest.fixture
def forward_backward() -> Callable[[nn.Module, torch.Tensor], torch.Tensor]:
    """``forward_backward(encoder, x)``: forward, backward, check every gradient, return the output."""
    return _forward_backward
