"""Tests for supcon.losses.dense: the full similarity matrix, differentiated by autograd.

The per-anchor losses of ``dense_row_losses`` against the paper's equations written out for a
four-row batch, and no NaN (value or gradient) for anchors without positives, on every path.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supcon import supcon_loss
from supcon.losses.dense import dense_row_losses
from supcon.losses.spec import PositiveSpec
from loss_cases import DENOMINATORS, PATHS, RTOL, ATOL, VARIANTS, randn


@pytest.mark.parametrize("variant", VARIANTS)
def test_dense_row_losses_follow_equations_2_and_3(variant: str) -> None:
    """L_out = -mean_p (s_ip - LSE_i), L_in = -log mean_p exp(s_ip - LSE_i), LSE over j != i."""
    z = F.normalize(randn(4, 3, seed=61), dim=1)
    groups = torch.tensor([0, 0, 1, 0])  # row 2 has no positive
    spec = PositiveSpec(torch.arange(4), groups, groups)
    losses, npos = dense_row_losses(z, z, spec, 1 / 0.5, variant, "all")
    assert npos.tolist() == [2, 2, 0, 2]
    sim = z @ z.T / 0.5
    for i in (0, 1, 3):
        others = [j for j in range(4) if j != i]
        positives = [j for j in others if groups[j] == groups[i]]
        log_ratio = sim[i, positives] - torch.logsumexp(sim[i, others], dim=0)
        expected = -log_ratio.mean() if variant == "out" else -torch.log(log_ratio.exp().mean())
        torch.testing.assert_close(losses[i], expected, rtol=RTOL, atol=ATOL)
    assert torch.isfinite(losses[2])


@pytest.mark.parametrize("chunk_size", PATHS)
@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_anchors_without_positives_give_no_nan(variant: str, denominator: str, chunk_size) -> None:
    features = randn(6, 4, seed=52).float().requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 0, 3, 4])  # only rows 0 and 3 have a positive
    loss = supcon_loss(features, labels, variant=variant, denominator=denominator,
                       chunk_size=chunk_size)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(features.grad).all()
    per_anchor = supcon_loss(features, labels, variant=variant, denominator=denominator,
                             chunk_size=chunk_size, reduction="none")
    assert torch.isfinite(per_anchor).all()
    assert torch.all(per_anchor[torch.tensor([1, 2, 4, 5])] == 0.0)
    torch.testing.assert_close(loss, per_anchor[torch.tensor([0, 3])].mean())
