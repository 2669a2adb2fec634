"""Tests for supcon.losses.logsumexp: the online log-sum-exp over column blocks."""

from __future__ import annotations

import math

import pytest
import torch

from supcon.losses.logsumexp import _column_blocks, _finite, _masked_logsumexp, _OnlineLSE
from loss_cases import ATOL, RTOL, randn


@pytest.mark.parametrize("chunk", [1, 3, 7])
def test_online_lse_over_blocks_equals_the_masked_logsumexp(chunk: int) -> None:
    values = randn(4, 7, seed=62) * 30  # far apart: a running max must rescale
    keep = randn(4, 7, seed=63) > -0.3
    keep[2] = False  # an empty row
    tilt = randn(4, 7, seed=64)
    lse = _OnlineLSE(4, values)
    for c0 in _column_blocks(7, chunk):
        lse.update(values[:, c0:c0 + chunk], keep[:, c0:c0 + chunk], tilt=tilt[:, c0:c0 + chunk])
    expected = _masked_logsumexp(values, keep)
    assert expected[2] == -math.inf and lse.value()[2] == -math.inf
    torch.testing.assert_close(lse.value(), expected, rtol=RTOL, atol=ATOL)
    softmax = torch.softmax(values.masked_fill(~keep, -math.inf)[[0, 1, 3]], dim=1)
    torch.testing.assert_close((lse.tilted / lse.sum)[[0, 1, 3]],
                               (softmax * tilt[[0, 1, 3]]).sum(1), rtol=RTOL, atol=ATOL)
    assert _finite(lse.value())[2] == 0.0
