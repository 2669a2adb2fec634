"""Tests for supcon.corruptions.rng: draws follow the generator (or the global seed) and the images' dtype."""

from __future__ import annotations

import torch

from supcon.corruptions.rng import rand, randint, randn, rng_device


def test_draws_follow_the_generator_and_the_dtype():
    like = torch.zeros(1, dtype=torch.float64)
    for draw in (rand, randn):
        first = draw((3, 4), torch.Generator().manual_seed(0), like)
        assert first.shape == (3, 4) and first.dtype == torch.float64 and first.device == like.device
        assert torch.equal(first, draw((3, 4), torch.Generator().manual_seed(0), like))
    values = rand((1000,), torch.Generator().manual_seed(0), like)
    assert values.min() >= 0 and values.max() < 1
    ints = randint(-2, 2, (1000,), torch.Generator().manual_seed(0), like)
    assert ints.dtype == torch.int64 and set(ints.tolist()) == {-2, -1, 0, 1}


def test_default_generator_follows_the_global_seed():
    like = torch.zeros(1)
    torch.manual_seed(11)
    first = randn((5,), None, like)
    torch.manual_seed(11)
    assert torch.equal(first, randn((5,), None, like))


def test_rng_device():
    like = torch.zeros(1)
    assert rng_device(None, like) == like.device
    assert rng_device(torch.Generator(device="cpu"), like) == torch.device("cpu")
