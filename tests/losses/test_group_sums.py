"""Tests for supcon.losses.group_sums: positive sums from per-group row sums, the log-sum-exp
without the anchor's own row."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supcon.losses.group_sums import _fixed_shift, _lse_without_self, _PositiveSums
from supcon.losses.logsumexp import _masked_logsumexp
from supcon.losses.spec import PositiveSpec
from loss_cases import ATOL, RTOL, randn


def _specs() -> dict[str, PositiveSpec]:
    """Seven anchors among nine contrast rows: the equality rule, and a table of weights."""
    groups = torch.tensor([4, 9, 4, 4, 9, 7, 4, 7, 1])
    table = torch.tensor([[1.0, 0.0, 0.5], [0.0, 2.0, 0.0], [0.3, 0.0, 1.0]])
    sample = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    return {"equality": PositiveSpec(torch.arange(7), groups[:7], groups),
            "table": PositiveSpec(torch.arange(7), sample[:7], sample, table)}


@pytest.mark.parametrize("prefix", [False, True])
@pytest.mark.parametrize("kind", ["equality", "table", "shuffled"])
def test_positive_sums_equal_the_weight_matrix_products(kind: str, prefix: bool) -> None:
    """Both directions against the (anchors x contrast) weight matrix; ``prefix`` (the anchors
    are the first rows) only where that holds."""
    if kind == "shuffled":  # anchors at rows 8, 0, 3, ...: only the general form
        if prefix:
            pytest.skip("prefix needs anchor_index = arange(M)")
        groups = torch.tensor([4, 9, 4, 4, 9, 7, 4, 7, 1])
        index = torch.tensor([8, 0, 3, 5, 2, 7, 1])
        spec = PositiveSpec(index, groups[index], groups)
    else:
        spec = _specs()[kind]
    weights, _ = spec.block(0, 9)
    weights = weights.to(torch.float64)
    sums = _PositiveSums(spec, torch.float64, prefix=prefix)
    x, y = randn(9, 3, seed=65), randn(7, 3, seed=66)
    torch.testing.assert_close(sums.over_contrast(x), weights @ x, rtol=RTOL, atol=ATOL)
    out = randn(9, 3, seed=67)
    expected = out - weights.T @ y
    sums.subtract_over_anchors(out, y)
    torch.testing.assert_close(out, expected, rtol=RTOL, atol=ATOL)
    indicator = _PositiveSums(spec, torch.float64, indicator=True, prefix=prefix)
    counts = indicator.over_contrast(torch.ones(9, 1, dtype=torch.float64))
    torch.testing.assert_close(counts[:, 0], (weights > 0).sum(1).to(torch.float64))


@pytest.mark.parametrize("scale", [1.0, 40.0])  # a fixed shift, then too far apart for one
@pytest.mark.parametrize("chunk", [2, 4, 9])
def test_lse_without_self_equals_the_masked_logsumexp(scale: float, chunk: int) -> None:
    contrast = F.normalize(randn(9, 3, seed=67), dim=1) * scale
    anchors, anchor_index, inv_t = contrast[:7], torch.arange(7), 1 / 0.5
    assert (_fixed_shift(anchors, contrast, inv_t) is None) == (scale > 1)
    not_self = anchor_index[:, None] != torch.arange(9)[None, :]
    expected = _masked_logsumexp(anchors @ contrast.T * inv_t, not_self)
    actual = _lse_without_self(anchors, contrast, anchor_index, inv_t, chunk)
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL)
    assert torch.isfinite(actual).all()
