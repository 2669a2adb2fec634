"""Tests for supcon.corruptions.textures: the plasma fractal's range, size and determinism."""

from __future__ import annotations

import pytest
import torch

from supcon.corruptions.textures import texture_plasma


@pytest.mark.parametrize("size", [(32, 32), (28, 28), (8, 12), (64, 48)])
def test_texture_plasma_shape_and_range(size):
    like = torch.zeros(1)
    maps = texture_plasma(3, *size, 2.0, torch.Generator().manual_seed(0), like)
    assert maps.shape == (3, 1, *size) and maps.dtype == like.dtype
    assert maps.min() >= 0 and maps.max() <= 1
    assert (maps.flatten(1).std(dim=1) > 0).all()  # every map has structure
    assert not torch.equal(maps[0], maps[1])  # and its own


def test_texture_plasma_spans_zero_to_one_at_a_power_of_two():
    maps = texture_plasma(2, 32, 32, 3.0, torch.Generator().manual_seed(0), torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(maps.amin(dim=(1, 2, 3)), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(maps.amax(dim=(1, 2, 3)), torch.ones(2, dtype=torch.float64))


def test_texture_plasma_is_deterministic_given_generator():
    like = torch.zeros(1)
    first = texture_plasma(2, 16, 16, 2.0, torch.Generator().manual_seed(4), like)
    assert torch.equal(first, texture_plasma(2, 16, 16, 2.0, torch.Generator().manual_seed(4), like))
    assert not torch.equal(first, texture_plasma(2, 16, 16, 2.0, torch.Generator().manual_seed(5), like))
