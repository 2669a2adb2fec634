"""The tiled path: online log-sum-exp forward, block recomputation backward.

The (anchors x contrast) similarity matrix never exists whole: the forward sweeps blocks of
``chunk`` columns, keeping a few statistics per anchor (positive weight sums and counts, online
log-sum-exps of the denominator set), and the hand-written backward recomputes each block to
form ``d loss / d s``. Memory is O((M + N) * chunk). L_out with the "all" denominator takes the
faster group-sum route of :mod:`supcon.losses.group_sums`; on CUDA with Triton installed,
:func:`tiled_row_losses` hands the cases the fused kernel implements to :mod:`supcon.kernels`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from supcon import kernels
from supcon.losses.group_sums import _out_all_backward, _out_all_forward
from supcon.losses.logsumexp import _column_blocks, _exp_inplace, _finite, _OnlineLSE
from supcon.losses.spec import PositiveSpec

__all__ = ["tiled_row_losses"]


def tiled_row_losses(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
    variant: str, denominator: str, chunk: int,
) -> tuple[Tensor, Tensor]:
    """Per-anchor losses and positive counts, block by block: the fused Triton kernel where it
    applies (see :mod:`supcon.kernels`), else :class:`_TiledSupCon` in PyTorch.

    Takes and returns what :func:`supcon.losses.dense.dense_row_losses` does, plus ``chunk``:
    the block size, in anchor rows and in contrast columns.
    """
    if kernels.triton_applicable(anchors, spec, variant, denominator):
        return kernels.triton_row_losses(anchors, contrast, spec, inv_t, variant)
    return _TiledSupCon.apply(anchors, contrast, spec, inv_t, variant, denominator, chunk)


def _tiled_statistics(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
    variant: str, denominator: str, chunk: int,
) -> dict[str, Tensor]:
    """Forward sweep for one block of anchors: the per-anchor statistics of the loss.

    Returns a dict with ``loss`` (m,), ``npos`` (m,) and what backward needs: ``total`` (sum of
    weights), ``log_den`` (LSE of the denominator set, or of the negatives), ``log_pos`` (for
    "in"), and ``coef`` / ``log_q`` (for "one_positive").
    """
    scaled = anchors * inv_t
    total, weighted_sim, npos, lse_den, lse_pos = _denominator_sweep(
        scaled, contrast, spec, variant, denominator, chunk)
    has_pos = total > 0
    safe_total = torch.where(has_pos, total, torch.ones_like(total))
    log_den = lse_den.value()  # -inf for an empty set (no negatives)
    stats = {"npos": npos, "total": safe_total, "log_den": log_den}

    if denominator == "one_positive":
        stats.update(_one_positive_sweep(scaled, contrast, spec, log_den, safe_total, has_pos,
                                         variant, chunk))
        return stats
    if denominator == "only_negatives":
        # An anchor without negatives has an empty denominator: treated as 1, like the dense path.
        log_den = _finite(log_den)
        stats["log_den"] = log_den
    if variant == "out":
        stats["loss"] = -(weighted_sim / safe_total - log_den)
    else:
        log_pos = _finite(lse_pos.value()) - torch.log(safe_total)
        stats["log_pos"] = log_pos
        stats["loss"] = -(log_pos - log_den)
    return stats


def _denominator_sweep(
    scaled: Tensor, contrast: Tensor, spec: PositiveSpec, variant: str, denominator: str,
    chunk: int,
) -> tuple[Tensor, Tensor, Tensor, _OnlineLSE, _OnlineLSE | None]:
    """The first sweep over the columns, for anchors ``scaled = anchors / t``.

    Returns the per-anchor sum of positive weights, the weighted sum of positive similarities,
    the positive counts, the online LSE of the denominator set ("all") or of the negatives,
    and, for "in" without "one_positive", the online LSE of ``s + log w`` over the positives.
    """
    m, n = scaled.shape[0], contrast.shape[0]
    lse_den = _OnlineLSE(m, scaled)
    lse_pos = _OnlineLSE(m, scaled) if variant == "in" and denominator != "one_positive" else None
    total = scaled.new_zeros(m)
    weighted_sim = scaled.new_zeros(m)
    npos = torch.zeros(m, dtype=torch.long, device=scaled.device)
    for c0 in _column_blocks(n, chunk):
        c1 = min(c0 + chunk, n)
        sim = scaled @ contrast[c0:c1].T
        weights, in_den = spec.block(c0, c1)
        weights = weights.to(sim.dtype)
        positive = weights > 0
        keep = in_den if denominator == "all" else in_den & ~positive
        total += weights.sum(1)
        weighted_sim += (weights * sim).sum(1)
        npos += positive.sum(1)
        if lse_pos is not None:
            lse_pos.update(sim + torch.log(weights), positive)
        lse_den.update(sim, keep)
    return total, weighted_sim, npos, lse_den, lse_pos


def _one_positive_sweep(
    scaled: Tensor, contrast: Tensor, spec: PositiveSpec, log_den: Tensor, safe_total: Tensor,
    has_pos: Tensor, variant: str, chunk: int,
) -> dict[str, Tensor]:
    """Second sweep for "one_positive": each positive's own denominator needs the negatives'
    LSE, ``L = log_den``. Returns ``loss`` and ``coef`` (and ``log_q`` for "in")."""
    m, n = scaled.shape[0], contrast.shape[0]
    neg_empty = ~torch.isfinite(log_den)
    if variant == "out":
        loss = scaled.new_zeros(m)  # sum_p wbar softplus(L - s)
        coef = scaled.new_zeros(m)  # d loss / d L = sum_p wbar sigmoid(L - s)
    else:
        # log q = LSE_p(log wbar + logsigmoid(s - L)) in log space (q underflows otherwise);
        # d loss / d L = sum_p r_p sigmoid(L - s) with r_p = wbar sigmoid(s - L) / q.
        lse_q = _OnlineLSE(m, scaled)
    for c0 in _column_blocks(n, chunk):
        c1 = min(c0 + chunk, n)
        sim = scaled @ contrast[c0:c1].T
        weights, _ = spec.block(c0, c1)
        weights = weights.to(sim.dtype)
        gap = log_den[:, None] - sim  # L - s (-inf without negatives: no loss, no grad)
        if variant == "out":
            wbar = weights / safe_total[:, None]
            loss += (wbar * F.softplus(gap)).sum(1)
            coef += (wbar * torch.sigmoid(gap)).sum(1)
        else:
            log_terms = torch.log(weights) - F.softplus(gap)
            lse_q.update(log_terms, weights > 0, tilt=torch.sigmoid(gap))
    if variant == "out":
        return {"loss": loss, "coef": torch.where(neg_empty, torch.zeros_like(coef), coef)}
    log_q = lse_q.value() - torch.log(safe_total)
    log_q = torch.where(has_pos, log_q, torch.zeros_like(log_q))
    coef = lse_q.tilted / torch.where(has_pos, lse_q.sum, torch.ones_like(lse_q.sum))
    return {"loss": -log_q, "log_q": log_q,
            "coef": torch.where(neg_empty | ~has_pos, torch.zeros_like(coef), coef)}


def _masked_exp(values: Tensor, keep: Tensor, shift: Tensor) -> Tensor:
    """``exp(values - shift[:, None])`` where ``keep``, exactly 0 elsewhere (never inf * 0)."""
    out = torch.where(keep, values, torch.full_like(values[:1, :1], -math.inf))
    return _exp_inplace(out.sub_(shift[:, None]))


def _tiled_block_grad(
    sim: Tensor, weights: Tensor, in_den: Tensor, stats: dict[str, Tensor],
    variant: str, denominator: str,
) -> Tensor:
    """d loss_i / d s_ij for one block, from the saved per-anchor statistics."""
    positive = weights > 0
    keep = in_den if denominator == "all" else in_den & ~positive
    grad = _masked_exp(sim, keep, _finite(stats["log_den"]))  # softmax over the denominator set
    if denominator == "one_positive":
        grad.mul_(stats["coef"][:, None])
        gap = stats["log_den"][:, None] - sim  # -inf without negatives: sigmoids give zero gradient
        if variant == "out":
            return grad.sub_(weights / stats["total"][:, None] * torch.sigmoid(gap))
        # r_p sigmoid(L - s_p), r_p = wbar_p sigmoid(s_p - L) / q, formed in log space.
        log_r = torch.log(weights) - F.softplus(gap)
        shift = stats["log_q"] + torch.log(stats["total"])
        return grad.sub_(_masked_exp(log_r, positive, shift).mul_(torch.sigmoid(gap)))
    if variant == "out":
        return grad.sub_(weights / stats["total"][:, None])
    log_pos = stats["log_pos"] + torch.log(stats["total"])
    return grad.sub_(_masked_exp(sim + torch.log(weights), positive, log_pos))


class _TiledSupCon(torch.autograd.Function):
    """Per-anchor SupCon losses without the N x N matrix: O((M + N) * chunk) memory."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
        variant: str, denominator: str, chunk: int,
    ) -> tuple[Tensor, Tensor]:
        ctx.spec, ctx.inv_t, ctx.variant, ctx.denominator, ctx.chunk = (
            spec, inv_t, variant, denominator, chunk)
        ctx.save_for_backward(anchors, contrast)
        ctx.linear = variant == "out" and denominator == "all" and spec.negatives is None
        if ctx.linear:
            loss, npos_all, ctx.stats = _out_all_forward(anchors, contrast, spec, inv_t, chunk)
            ctx.mark_non_differentiable(npos_all)
            return loss, npos_all
        losses, npos, saved = [], [], []
        for r0 in range(0, anchors.shape[0], chunk):
            r1 = min(r0 + chunk, anchors.shape[0])
            stats = _tiled_statistics(
                anchors[r0:r1], contrast, spec.rows(r0, r1), inv_t, variant, denominator, chunk
            )
            losses.append(stats.pop("loss"))
            npos.append(stats.pop("npos"))
            saved.append(stats)
        ctx.stats = saved
        npos_all = torch.cat(npos)
        ctx.mark_non_differentiable(npos_all)
        return torch.cat(losses), npos_all

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_npos: Tensor):  # type: ignore[override]
        anchors, contrast = ctx.saved_tensors
        spec, inv_t, chunk = ctx.spec, ctx.inv_t, ctx.chunk
        if ctx.linear:
            grad_anchors, grad_contrast = _out_all_backward(
                anchors, contrast, spec.anchor_index, ctx.stats, grad_loss, inv_t, chunk)
            return grad_anchors, grad_contrast, None, None, None, None, None
        grad_anchors = torch.zeros_like(anchors)
        grad_contrast = torch.zeros_like(contrast)
        n = contrast.shape[0]
        for block_index, r0 in enumerate(range(0, anchors.shape[0], chunk)):
            r1 = min(r0 + chunk, anchors.shape[0])
            rows = spec.rows(r0, r1)
            stats = ctx.stats[block_index]
            upstream = grad_loss[r0:r1] * inv_t
            scaled = anchors[r0:r1] * inv_t
            a_up = anchors[r0:r1] * upstream[:, None]
            dsim_sum = anchors.new_zeros(r1 - r0, anchors.shape[1])
            for c0 in _column_blocks(n, chunk):
                c1 = min(c0 + chunk, n)
                sim = scaled @ contrast[c0:c1].T
                weights, in_den = rows.block(c0, c1)
                dsim = _tiled_block_grad(
                    sim, weights.to(sim.dtype), in_den, stats, ctx.variant, ctx.denominator
                )
                dsim_sum.addmm_(dsim, contrast[c0:c1])
                grad_contrast[c0:c1].addmm_(dsim.T, a_up)
            grad_anchors[r0:r1] += upstream[:, None] * dsim_sum
        return grad_anchors, grad_contrast, None, None, None, None, None
