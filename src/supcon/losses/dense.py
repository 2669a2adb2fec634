"""The dense path: the full (anchors x contrast) similarity matrix at once.

L_out with the "all" denominator (no cap) goes to :mod:`supcon.losses.dense_out_all` (one saved
matrix, a hand-written backward); every other option builds the similarity matrix here and lets
autograd differentiate it. Memory grows as ``anchors * contrast``; :func:`supcon.losses.supcon_loss`
takes this path with ``chunk_size=None``, or under ``chunk_size="auto"`` below the crossovers
:data:`supcon.losses.AUTO_DENSE_MAX_BYTES` and :data:`supcon.losses.AUTO_TILED_THRESHOLD`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from supcon.losses.dense_out_all import dense_out_all_row_losses, takes_dense_out_all
from supcon.losses.group_sums import _is_prefix
from supcon.losses.logsumexp import _finite, _masked_logsumexp
from supcon.losses.spec import PositiveSpec

__all__ = ["dense_row_losses"]


def dense_row_losses(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
    variant: str, denominator: str,
) -> tuple[Tensor, Tensor]:
    """Per-anchor losses and positive counts from the whole similarity matrix at once.

    Args:
        anchors: (M, dim) anchor rows (the first M contrast rows).
        contrast: (N, dim) contrast rows.
        spec: the positives of each anchor.
        inv_t: 1 / temperature.
        variant: "out" or "in".
        denominator: "all", "one_positive" or "only_negatives".

    Returns:
        losses: (M,), finite (and meaningless) for anchors without positives.
        npos: (M,) long, the number of positive rows of each anchor.
    """
    if takes_dense_out_all(spec, variant, denominator) and _is_prefix(anchors, contrast):
        return dense_out_all_row_losses(contrast, anchors.shape[0], spec, inv_t, normalize=False)
    sim = (anchors @ contrast.T) * inv_t
    weights, in_den = spec.block(0, contrast.shape[0])
    weights = weights.to(sim.dtype)
    npos = (weights > 0).sum(1)
    return _losses_from_similarities(sim, weights, in_den, variant, denominator), npos


def _losses_from_similarities(
    sim: Tensor, weights: Tensor, in_denominator: Tensor, variant: str, denominator: str
) -> Tensor:
    """Per-anchor losses from the full similarity matrix, differentiable by autograd.

    Args:
        sim: (M, N) similarities ``s / t``.
        weights: (M, N) non-negative positive weights (zero on the anchor's own row).
        in_denominator: (M, N) bool, rows in the "all" denominator (positives and negatives).
        variant: "out" or "in".
        denominator: "all", "one_positive" or "only_negatives".

    Returns:
        (M,) losses; anchors without positives get a finite value the caller discards.
    """
    positive = weights > 0
    total = weights.sum(1)
    has_pos = total > 0
    wbar = weights / torch.where(has_pos, total, torch.ones_like(total))[:, None]
    negative = in_denominator & ~positive
    # Rows with no positive must not feed -inf/NaN into autograd: give them a dummy positive set.
    safe_positive = positive | ~has_pos[:, None]

    if denominator == "all":
        log_den = _masked_logsumexp(sim, in_denominator)
    else:
        log_den = _finite(_masked_logsumexp(sim, negative))
        if denominator == "one_positive":
            # log(exp(s_ip) + sum_neg exp(s_in)) for every positive p, from the negatives' LSE.
            log_den_rows = torch.logaddexp(sim, log_den[:, None])
            neg_empty = ~negative.any(1)
            log_den_rows = torch.where(neg_empty[:, None], sim, log_den_rows)
    if variant == "out":
        if denominator == "one_positive":
            return -(wbar * (sim - log_den_rows)).sum(1)
        return -((wbar * sim).sum(1) - log_den)
    # variant "in": -log sum_p wbar_p exp(s_p) / DEN_p. log(wbar) is -inf off the positives; rows
    # without any positive get a finite dummy (0) so that no -inf/NaN reaches autograd.
    log_w = torch.where(positive, torch.log(torch.where(positive, wbar, torch.ones_like(wbar))),
                        torch.full_like(wbar, -math.inf))
    log_w = torch.where(safe_positive & ~positive, torch.zeros_like(log_w), log_w)
    if denominator == "one_positive":
        return -torch.logsumexp(log_w + sim - log_den_rows, dim=1)
    return -(torch.logsumexp(log_w + sim, dim=1) - log_den)
