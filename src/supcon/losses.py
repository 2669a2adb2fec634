"""The supervised contrastive loss family (Khosla et al., NeurIPS 2020, arXiv 2004.11362).

One function, :func:`supcon_loss`, and its module wrapper, :class:`SupConLoss`, cover:

* ``L_out`` (the paper's eq. 2, the default) and ``L_in`` (eq. 3);
* SimCLR's NT-Xent (no labels, no mask: the positives are the other views of each image);
* integer labels, multi-hot labels and (soft) positive masks;
* the official TF code's ``denominator`` modes and ``positives_cap``;
* an extra contrast set (embeddings gathered from other GPUs, or a memory queue) that joins
  the positives and the denominator without being anchors.

Two exact paths compute it. The dense path builds the (anchors x contrast) similarity matrix and
lets autograd differentiate it. The tiled path never holds that matrix: it sweeps blocks of
columns with an online log-sum-exp, keeps a few statistics per anchor, and recomputes each block
in a hand-written backward. Both give the same value and gradient; ``chunk_size="auto"`` picks
the tiled path from 8192 contrast rows on. On CUDA with Triton installed, the tiled path runs as a
fused Triton kernel when the options allow it (see :mod:`supcon.kernels`).

Notation used in the code: ``s[i, j] = z_i . z_j / t`` for anchor row ``i`` and contrast row
``j``; ``w[i, j] >= 0`` the positive weight; positives ``P(i) = {j != i: w > 0}``; negatives
``N(i) = {j != i: j is not a (possibly capped) positive}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SupConLoss", "supcon_loss", "AUTO_TILED_THRESHOLD", "VARIANTS", "DENOMINATORS"]

VARIANTS = ("out", "in")
CONTRAST_MODES = ("all", "one")
DENOMINATORS = ("all", "one_positive", "only_negatives")
REDUCTIONS = ("mean", "sum", "none")

#: ``chunk_size="auto"`` switches to the tiled path at this many contrast rows.
AUTO_TILED_THRESHOLD = 8192
#: Block size the tiled path uses under ``chunk_size="auto"``: 2048 x 2048 blocks (16 MiB in
#: float32) cost the same CPU time as 1024 but halve the wall time where threads compete for
#: cores (a quarter of the parallel regions); on CUDA they mean fewer kernel launches.
AUTO_CHUNK = 1024

Variant = Literal["out", "in"]
Denominator = Literal["all", "one_positive", "only_negatives"]


@dataclass
class PositiveSpec:
    """Which contrast rows are positives (and negatives) of which anchors, without an N x N mask.

    Every anchor row ``i`` has a group ``anchor_group[i]`` and every contrast row ``j`` a group
    ``contrast_group[j]``. With ``table is None`` the weight is ``w = [group_i == group_j]``;
    otherwise ``w = table[group_i, group_j]`` and the denominator holds the positives and the
    rows where ``negatives[group_i, group_j]`` is true. The anchor's own row
    (``anchor_index[i]``) is always excluded.

    Attributes:
        anchor_index: (M,) long, position of each anchor in the contrast rows.
        anchor_group: (M,) long.
        contrast_group: (N,) long.
        table: (Ga, Gc) float positive weights, or None for the equality rule.
        negatives: (Ga, Gc) bool, or None (then negatives are ``w == 0``).
    """

    anchor_index: Tensor
    anchor_group: Tensor
    contrast_group: Tensor
    table: Tensor | None = None
    negatives: Tensor | None = None

    def rows(self, start: int, stop: int) -> PositiveSpec:
        """The spec restricted to anchors ``start:stop``."""
        return PositiveSpec(
            self.anchor_index[start:stop],
            self.anchor_group[start:stop],
            self.contrast_group,
            self.table,
            self.negatives,
        )

    def block(self, col_start: int, col_stop: int) -> tuple[Tensor, Tensor]:
        """Positive weights and denominator membership for columns ``col_start:col_stop``.

        Returns:
            weights: (m, c) float, zero on the anchor's own row.
            in_denominator: (m, c) bool, False on the anchor's own row.
        """
        cols = self.contrast_group[col_start:col_stop]
        col_ids = torch.arange(col_start, col_stop, device=cols.device)
        not_self = self.anchor_index[:, None] != col_ids[None, :]
        if self.table is None:
            positive = (self.anchor_group[:, None] == cols[None, :]) & not_self
            return positive.to(torch.get_default_dtype()), not_self
        weights = self.table.index_select(0, self.anchor_group).index_select(1, cols)
        weights = weights * not_self
        if self.negatives is None:
            return weights, not_self
        negative = self.negatives.index_select(0, self.anchor_group).index_select(1, cols)
        return weights, ((weights > 0) | negative) & not_self


# ---------------------------------------------------------------------------------------------
# Per-anchor losses from one block of similarities (shared by the dense path and the tiled path)
# ---------------------------------------------------------------------------------------------


def _masked_logsumexp(values: Tensor, keep: Tensor) -> Tensor:
    """Row-wise log-sum-exp over the entries where ``keep`` is true (-inf for an empty row)."""
    return torch.logsumexp(values.masked_fill(~keep, -math.inf), dim=1)


def _finite(x: Tensor) -> Tensor:
    """Replaces -inf (an empty log-sum-exp) with 0 so that excluded rows stay NaN-free."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


def _dense_row_losses(
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


# ---------------------------------------------------------------------------------------------
# The tiled path: online log-sum-exp forward, block recomputation backward
# ---------------------------------------------------------------------------------------------


class _OnlineLSE:
    """A running row-wise log-sum-exp over column blocks, one (max, sum) pair per row.

    With ``tilt``, it also keeps ``tilted = sum exp(v - max) * tilt`` under the same rescaling,
    so that ``tilted / sum`` is the softmax-weighted mean of ``tilt``.
    """

    def __init__(self, rows: int, like: Tensor) -> None:
        self.max = torch.full((rows,), -math.inf, dtype=like.dtype, device=like.device)
        self.sum = torch.zeros(rows, dtype=like.dtype, device=like.device)
        self.tilted = torch.zeros(rows, dtype=like.dtype, device=like.device)

    def update(self, values: Tensor, keep: Tensor, tilt: Tensor | None = None) -> None:
        """Adds the entries of ``values`` (rows x block) where ``keep`` is true."""
        values = torch.where(keep, values, torch.full_like(values[:1, :1], -math.inf))
        self.update_inplace(values, tilt)

    def update_inplace(self, values: Tensor, tilt: Tensor | None = None) -> None:
        """Like :meth:`update` with every entry kept (-inf leaves one out); consumes ``values``."""
        new_max = torch.maximum(self.max, values.amax(1))
        shift = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))
        rescale = torch.exp(self.max - shift)
        weights = values.sub_(shift[:, None]).exp_()
        self.sum = self.sum * rescale + weights.sum(1)
        if tilt is not None:
            self.tilted = self.tilted * rescale + (weights * tilt).sum(1)
        self.max = new_max

    def value(self) -> Tensor:
        shift = torch.where(torch.isfinite(self.max), self.max, torch.zeros_like(self.max))
        return torch.log(self.sum) + shift  # log(0) = -inf for an empty row


def _column_blocks(n: int, chunk: int) -> range:
    return range(0, n, chunk)


# The common case, L_out with the "all" denominator and no capped positives, needs no mask at
# all: the denominator is every row but the anchor's own, and the positive terms are linear in
# the contrast rows (sum_j w_ij s_ij = z_i . sum_j w_ij z_j / t), so they come from per-group
# sums of rows. The block sweeps then do one matmul, one exp and one row sum per block forward,
# and one matmul, one exp and two gradient matmuls per block backward.

#: Largest spread ``2 * shift`` of exponents the fixed shift takes on: ``exp(-x)`` stays a normal
#: float (float32 underflows near 87.3, float64 near 708), and float32 keeps ``log(sum)`` within
#: 40 of 0, so its rounding matches a running max.
_SAFE_SHIFT_RANGE = {torch.float32: 40.0, torch.float64: 700.0}


def _compact_groups(anchor_group: Tensor, contrast_group: Tensor) -> tuple[Tensor, Tensor]:
    """Maps both group vectors onto shared ids in ``[0, M + N)`` (sort-based, no device sync)."""
    keys = torch.cat([anchor_group, contrast_group])
    sorted_keys, order = torch.sort(keys)
    starts = torch.ones_like(sorted_keys, dtype=torch.long)
    starts[0] = 0
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    ids = torch.empty_like(starts).scatter_(0, order, torch.cumsum(starts, 0))
    m = anchor_group.shape[0]
    return ids[:m], ids[m:]


class _PositiveSums:
    """Weighted sums over each anchor's positives without an (anchors x contrast) mask.

    With ``w[i, j] = table[g_i, h_j]`` (``[g_i == h_j]`` without a table) and the anchor's own
    row ``k_i`` excluded, ``sum_{j != k_i} w_ij x_j = (table @ X)[g_i] - w[i, k_i] x_{k_i}``,
    where ``X[h]`` sums ``x`` over the contrast rows of group ``h``: O((M + N) * dim) work, plus
    one (Ga x Gc x dim) matmul with a table.
    """

    def __init__(self, spec: PositiveSpec, dtype: torch.dtype, indicator: bool = False) -> None:
        self.k = spec.anchor_index
        if spec.table is None:
            self.g, self.h = _compact_groups(spec.anchor_group, spec.contrast_group)
            self.table = None
            self.n_g = self.n_h = self.g.shape[0] + self.h.shape[0]
            self.w_self = (self.g == self.h[self.k]).to(dtype)
        else:
            self.g, self.h = spec.anchor_group, spec.contrast_group
            table = spec.table > 0 if indicator else spec.table
            self.table = table.to(dtype)
            self.n_g, self.n_h = self.table.shape
            self.w_self = self.table[self.g, self.h[self.k]]

    def over_contrast(self, x: Tensor) -> Tensor:
        """(N, d) values per contrast row -> (M, d): ``sum_{j != k_i} w_ij x_j`` per anchor."""
        per_group = x.new_zeros(self.n_h, x.shape[1]).index_add_(0, self.h, x)
        if self.table is not None:
            per_group = self.table @ per_group
        return per_group.index_select(0, self.g) - self.w_self[:, None] * x.index_select(0, self.k)

    def over_anchors(self, y: Tensor) -> Tensor:
        """(M, d) values per anchor -> (N, d): ``sum_{i: k_i != j} w_ij y_i`` per contrast row."""
        per_group = y.new_zeros(self.n_g, y.shape[1]).index_add_(0, self.g, y)
        if self.table is not None:
            per_group = self.table.T @ per_group
        out = per_group.index_select(0, self.h)
        return out.index_add_(0, self.k, self.w_self[:, None] * y, alpha=-1)


def _fixed_shift(anchors: Tensor, contrast: Tensor, inv_t: float) -> Tensor | None:
    """A per-anchor log-sum-exp shift known before the sweep, or None where none is safe.

    ``shift_i = |z_i| max_j |z_j| / t`` bounds ``s_ij`` from above and ``-shift_i`` bounds it
    from below (Cauchy-Schwarz), so every ``exp(s_ij - shift_i)`` lies in
    ``[exp(-2 shift_i), 1]``: no overflow, and no underflow while ``2 shift_i`` stays within
    :data:`_SAFE_SHIFT_RANGE` (always for unit-norm features and t >= 0.05 in float32). Only
    on CPU, where reading the bound back costs nothing; elsewhere the sweep keeps a running max.
    """
    limit = _SAFE_SHIFT_RANGE.get(anchors.dtype)
    if anchors.device.type != "cpu" or limit is None or contrast.shape[0] == 0:
        return None
    shift = torch.linalg.vector_norm(anchors, dim=1) * (
        float(torch.linalg.vector_norm(contrast, dim=1).max()) * inv_t)
    if not 2 * float(shift.max()) <= limit:
        return None
    return shift


def _set_self(block: Tensor, self_col: Tensor, value: float) -> None:
    """Sets ``block[i, self_col[i]]`` to ``value`` where ``0 <= self_col[i] < block width``."""
    inside = (self_col >= 0) & (self_col < block.shape[1])
    col = self_col.clamp(0, block.shape[1] - 1)[:, None]
    current = block.gather(1, col)
    block.scatter_(1, col, torch.where(inside[:, None], torch.full_like(current, value), current))


def _lse_without_self(
    anchors: Tensor, contrast: Tensor, anchor_index: Tensor, inv_t: float, chunk: int,
) -> Tensor:
    """``log sum_{j != k_i} exp(s_ij)`` per anchor, one block of (chunk x chunk) at a time."""
    m_all, n = anchors.shape[0], contrast.shape[0]
    shift = _fixed_shift(anchors, contrast, inv_t)
    buffer = anchors.new_empty(min(chunk, m_all) * min(chunk, n))
    out = anchors.new_empty(m_all)
    if shift is not None:
        # exp(s - shift) straight out of the matmul: [z_i / t, -shift_i] . [z_j, 1].
        contrast_aug = torch.cat([contrast, contrast.new_ones(n, 1)], dim=1)
        for r0 in range(0, m_all, chunk):
            r1 = min(r0 + chunk, m_all)
            a_aug = torch.cat([anchors[r0:r1] * inv_t, -shift[r0:r1, None]], dim=1)
            total = anchors.new_zeros(r1 - r0)
            for c0 in _column_blocks(n, chunk):
                c1 = min(c0 + chunk, n)
                block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
                torch.mm(a_aug, contrast_aug[c0:c1].T, out=block)
                block.exp_()
                _set_self(block, anchor_index[r0:r1] - c0, 0.0)
                total += block.sum(1)
            out[r0:r1] = torch.log(total) + shift[r0:r1]
        return out
    for r0 in range(0, m_all, chunk):
        r1 = min(r0 + chunk, m_all)
        a = anchors[r0:r1] * inv_t
        lse = _OnlineLSE(r1 - r0, anchors)
        for c0 in _column_blocks(n, chunk):
            c1 = min(c0 + chunk, n)
            block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            torch.mm(a, contrast[c0:c1].T, out=block)
            _set_self(block, anchor_index[r0:r1] - c0, -math.inf)
            lse.update_inplace(block)
        out[r0:r1] = lse.value()
    return out


def _out_all_forward(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float, chunk: int,
) -> tuple[Tensor, Tensor, dict]:
    """Losses, positive counts and saved statistics for L_out with the "all" denominator."""
    positives = _PositiveSums(spec, anchors.dtype)
    ones = contrast.new_ones(contrast.shape[0], 1)
    total = positives.over_contrast(ones)[:, 0]
    counts = total if spec.table is None else (
        _PositiveSums(spec, anchors.dtype, indicator=True).over_contrast(ones)[:, 0])
    npos = counts.round().long()
    safe_total = torch.where(npos > 0, total, torch.ones_like(total))
    positive_sum = positives.over_contrast(contrast)  # (M, dim): sum_j w_ij z_j
    weighted_sim = (anchors * positive_sum).sum(1) * inv_t
    log_den = _lse_without_self(anchors, contrast, spec.anchor_index, inv_t, chunk)
    loss = -(weighted_sim / safe_total - log_den)
    saved = {"positives": positives, "positive_sum": positive_sum, "total": safe_total,
             "log_den": log_den}
    return loss, npos, saved


def _out_all_backward(
    anchors: Tensor, contrast: Tensor, anchor_index: Tensor, saved: dict, grad_loss: Tensor,
    inv_t: float, chunk: int,
) -> tuple[Tensor, Tensor]:
    """Gradients of ``sum_i grad_loss_i * loss_i`` for L_out with the "all" denominator.

    ``d loss_i / d s_ij = softmax_ij - wbar_ij``: the softmax part is recomputed block by block
    as ``exp(s_ij - log_den_i)``; the positive part is linear and uses the group sums.
    """
    m_all, n = anchors.shape[0], contrast.shape[0]
    upstream = grad_loss * inv_t
    coef = upstream / saved["total"]
    grad_anchors = -coef[:, None] * saved["positive_sum"]
    grad_contrast = -saved["positives"].over_anchors(coef[:, None] * anchors)
    log_den = _finite(saved["log_den"])
    contrast_aug = torch.cat([contrast, contrast.new_ones(n, 1)], dim=1)
    buffer = anchors.new_empty(min(chunk, m_all) * min(chunk, n))
    for r0 in range(0, m_all, chunk):
        r1 = min(r0 + chunk, m_all)
        a_aug = torch.cat([anchors[r0:r1] * inv_t, -log_den[r0:r1, None]], dim=1)
        a_up = anchors[r0:r1] * upstream[r0:r1, None]
        softmax_sum = anchors.new_zeros(r1 - r0, anchors.shape[1])
        for c0 in _column_blocks(n, chunk):
            c1 = min(c0 + chunk, n)
            block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            torch.mm(a_aug, contrast_aug[c0:c1].T, out=block)
            block.exp_()
            _set_self(block, anchor_index[r0:r1] - c0, 0.0)  # may be inf before: set, not scale
            softmax_sum.addmm_(block, contrast[c0:c1])
            grad_contrast[c0:c1].addmm_(block.T, a_up)
        grad_anchors[r0:r1] += upstream[r0:r1, None] * softmax_sum
    return grad_anchors, grad_contrast


def _tiled_statistics(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
    variant: str, denominator: str, chunk: int,
) -> dict[str, Tensor]:
    """Forward sweep for one block of anchors: the per-anchor statistics of the loss.

    Returns a dict with ``loss`` (m,), ``npos`` (m,) and what backward needs: ``total`` (sum of
    weights), ``log_den`` (LSE of the denominator set, or of the negatives), ``log_pos`` (for
    "in"), and ``coef`` / ``log_q`` (for "one_positive").
    """
    m, n = anchors.shape[0], contrast.shape[0]
    scaled = anchors * inv_t
    lse_den = _OnlineLSE(m, anchors)
    lse_pos = _OnlineLSE(m, anchors) if variant == "in" and denominator != "one_positive" else None
    total = anchors.new_zeros(m)
    weighted_sim = anchors.new_zeros(m)
    npos = torch.zeros(m, dtype=torch.long, device=anchors.device)
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
    has_pos = total > 0
    safe_total = torch.where(has_pos, total, torch.ones_like(total))
    log_den = lse_den.value()  # -inf for an empty set (no negatives)
    stats = {"npos": npos, "total": safe_total, "log_den": log_den}

    if denominator == "one_positive":
        # Second sweep: each positive's own denominator needs the negatives' LSE, L.
        neg_empty = ~torch.isfinite(log_den)
        if variant == "out":
            loss = anchors.new_zeros(m)  # sum_p wbar softplus(L - s)
            coef = anchors.new_zeros(m)  # d loss / d L = sum_p wbar sigmoid(L - s)
        else:
            # log q = LSE_p(log wbar + logsigmoid(s - L)) in log space (q underflows otherwise);
            # d loss / d L = sum_p r_p sigmoid(L - s) with r_p = wbar sigmoid(s - L) / q.
            lse_q = _OnlineLSE(m, anchors)
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
            stats["loss"] = loss
            stats["coef"] = torch.where(neg_empty, torch.zeros_like(coef), coef)
        else:
            log_q = lse_q.value() - torch.log(safe_total)
            log_q = torch.where(has_pos, log_q, torch.zeros_like(log_q))
            coef = lse_q.tilted / torch.where(has_pos, lse_q.sum, torch.ones_like(lse_q.sum))
            stats["loss"] = -log_q
            stats["log_q"] = log_q
            stats["coef"] = torch.where(neg_empty | ~has_pos, torch.zeros_like(coef), coef)
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


def _masked_exp(values: Tensor, keep: Tensor, shift: Tensor) -> Tensor:
    """``exp(values - shift[:, None])`` where ``keep``, exactly 0 elsewhere (never inf * 0)."""
    out = torch.where(keep, values, torch.full_like(values[:1, :1], -math.inf))
    return out.sub_(shift[:, None]).exp_()


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


# ---------------------------------------------------------------------------------------------
# Input handling
# ---------------------------------------------------------------------------------------------


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _build_table(
    labels: Tensor | None, mask: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, batch: int, extra: int, device: torch.device,
) -> tuple[Tensor, bool]:
    """The (batch, batch + extra) positive-weight table at sample level; bool says 'hard 0/1'."""
    if mask is not None:
        table = mask.to(device=device, dtype=torch.float64)
        if extra:
            side = (
                torch.zeros(batch, extra, dtype=torch.float64, device=device)
                if contrast_mask is None
                else contrast_mask.to(device=device, dtype=torch.float64)
            )
            table = torch.cat([table, side], dim=1)
        return table, False
    if labels is not None and labels.ndim == 2:  # multi-hot
        all_labels = labels if contrast_labels is None else torch.cat([labels, contrast_labels])
        shared = labels.to(torch.float64) @ all_labels.to(device=device, dtype=torch.float64).T
        return (shared > 0).to(torch.float64), True
    if labels is not None:
        all_labels = labels if contrast_labels is None else torch.cat([labels, contrast_labels])
        return (labels[:, None] == all_labels[None, :]).to(torch.float64), True
    table = torch.zeros(batch, batch + extra, dtype=torch.float64, device=device)
    table[:, :batch] = torch.eye(batch, dtype=torch.float64, device=device)
    return table, True


def _cap_table(table: Tensor, views: int, cap: int) -> Tensor:
    """Keeps, per anchor sample, its own sample plus positive samples in index order up to
    ``cap`` positive rows (``views`` rows per batch sample, 1 per extra row)."""
    batch = table.shape[0]
    costs = torch.ones(table.shape[1], dtype=torch.long, device=table.device)
    costs[:batch] = views
    own = torch.zeros_like(table, dtype=torch.bool)
    own[:, :batch] = torch.eye(batch, dtype=torch.bool, device=table.device)
    other = (table > 0) & ~own
    used = torch.cumsum(other.long() * costs, dim=1)
    keep = other & (used <= cap)
    return table * (keep | own)


def _validate(
    features: Tensor, labels: Tensor | None, mask: Tensor | None, temperature: float,
    base_temperature: float | None, variant: str, contrast_mode: str, positives_cap: int | None,
    denominator: str, contrast_features: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, chunk_size: int | str | None, reduction: str,
    check_inputs: bool,
) -> None:
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim not in (2, 3):
        raise ValueError(
            "features must have shape (batch, views, dim) or (n, dim), "
            f"got {features.ndim} dimensions with shape {tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"features must be a floating-point tensor, got {features.dtype}")
    batch = features.shape[0]
    views = features.shape[1] if features.ndim == 3 else 1
    dim = features.shape[-1]
    if batch < 1 or dim < 1:
        raise ValueError(f"features must be non-empty, got shape {tuple(features.shape)}")
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if base_temperature is not None and not base_temperature > 0:
        raise ValueError(f"base_temperature must be positive or None, got {base_temperature!r}")
    _check_choice("variant", variant, VARIANTS)
    _check_choice("contrast_mode", contrast_mode, CONTRAST_MODES)
    _check_choice("denominator", denominator, DENOMINATORS)
    _check_choice("reduction", reduction, REDUCTIONS)
    if not (chunk_size is None or chunk_size == "auto"
            or (isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0)):
        raise ValueError(f"chunk_size must be None, 'auto' or a positive int, got {chunk_size!r}")
    if labels is not None and mask is not None:
        raise ValueError("labels and mask are mutually exclusive: pass one of them, got both")
    if labels is not None:
        if labels.ndim not in (1, 2):
            raise ValueError(
                f"labels must be (batch,) classes or (batch, classes) multi-hot, "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.shape[0] != batch:
            raise ValueError(f"labels has {labels.shape[0]} entries, features has {batch} samples")
        if labels.ndim == 1 and labels.is_floating_point():
            raise ValueError(f"labels must be integers when 1-D, got {labels.dtype}")
    if mask is not None:
        if mask.shape != (batch, batch):
            raise ValueError(
                f"mask must have shape (batch, batch) = ({batch}, {batch}), got {tuple(mask.shape)}"
            )
        if check_inputs and mask.dtype != torch.bool and bool((mask < 0).any()):
            raise ValueError("mask must be non-negative (bool or float weights)")
    if labels is None and mask is None and views < 2:
        raise ValueError(
            "labels (or mask) is required when features has fewer than 2 views: "
            f"got shape {tuple(features.shape)} and no labels, so no anchor has a positive"
        )
    if positives_cap is not None:
        if isinstance(positives_cap, bool) or not isinstance(positives_cap, int) or positives_cap < 0:
            raise ValueError(f"positives_cap must be a non-negative int or None, got {positives_cap!r}")
        if positives_cap % views:
            raise ValueError(
                f"positives_cap must be a multiple of the number of views ({views}), got {positives_cap}"
            )
    if contrast_features is None:
        if contrast_labels is not None:
            raise ValueError("contrast_labels given without contrast_features")
        if contrast_mask is not None:
            raise ValueError("contrast_mask given without contrast_features")
    else:
        if contrast_features.ndim != 2 or contrast_features.shape[1] != dim:
            raise ValueError(
                f"contrast_features must have shape (n_extra, {dim}), got {tuple(contrast_features.shape)}"
            )
        extra = contrast_features.shape[0]
        if labels is not None:
            if contrast_labels is None:
                raise ValueError("contrast_labels is required with contrast_features when labels are given")
            if contrast_labels.shape[0] != extra or contrast_labels.ndim != labels.ndim or (
                labels.ndim == 2 and contrast_labels.shape[1] != labels.shape[1]
            ):
                raise ValueError(
                    f"contrast_labels must match contrast_features ({extra} rows) and labels' layout "
                    f"{tuple(labels.shape[1:])}, got shape {tuple(contrast_labels.shape)}"
                )
        elif contrast_labels is not None:
            raise ValueError("contrast_labels needs labels for the batch too (got labels=None)")
        if contrast_mask is not None:
            if mask is None:
                raise ValueError("contrast_mask goes with mask (got mask=None)")
            if contrast_mask.shape != (batch, extra):
                raise ValueError(
                    f"contrast_mask must have shape ({batch}, {extra}), got {tuple(contrast_mask.shape)}"
                )
    if check_inputs:
        if not bool(torch.isfinite(features).all()):
            raise ValueError("features contains NaN or Inf values")
        if contrast_features is not None and not bool(torch.isfinite(contrast_features).all()):
            raise ValueError("contrast_features contains NaN or Inf values")


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    variant: Variant = "out",
    contrast_mode: Literal["all", "one"] = "all",
    positives_cap: int | None = None,
    denominator: Denominator = "all",
    normalize: bool = True,
    contrast_features: Tensor | None = None,
    contrast_labels: Tensor | None = None,
    contrast_mask: Tensor | None = None,
    chunk_size: int | Literal["auto"] | None = "auto",
    reduction: Literal["mean", "sum", "none"] = "mean",
    check_inputs: bool = True,
) -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020), SimCLR's NT-Xent without labels.

    For anchor ``i`` with positives ``P(i)`` (weights ``w``, normalised to sum 1) and
    similarities ``s = z_i . z_j / temperature`` over all rows ``j != i``::

        L_out(i) = - sum_p wbar_p log( exp(s_ip) / DEN_i )                 (paper eq. 2)
        L_in(i)  = - log( sum_p wbar_p exp(s_ip) / DEN_i )                 (paper eq. 3)

    Args:
        features: (batch, views, dim) embeddings, or (n, dim) with one label per row. Views
            are flattened view-major (row ``v * batch + b``).
        labels: (batch,) integer classes, or (batch, classes) multi-hot (positives share a
            class). Mutually exclusive with ``mask``.
        mask: (batch, batch) bool or non-negative float positive weights (row-normalised);
            ``mask[b, b]`` decides whether sample b's other views are positives. Tiled over
            views. With neither labels nor mask, the positives are the other views of each
            sample (SimCLR).
        temperature: softmax temperature ``t`` (> 0).
        base_temperature: if given, the loss is scaled by ``t / base_temperature`` (the PyTorch
            reference's convention); None leaves it unscaled.
        variant: "out" (eq. 2, default) or "in" (eq. 3).
        contrast_mode: "all" (every view anchors) or "one" (only view 0 anchors).
        positives_cap: at most this many positive rows per anchor besides its own views
            (a multiple of ``views``); positives past the cap, in index order, leave the
            numerator and the denominator (the official TF code's rule). None: no cap.
        denominator: "all" (every row but the anchor), "one_positive" (the negatives and the
            one positive in the numerator) or "only_negatives".
        normalize: L2-normalise features (and contrast_features) first.
        contrast_features: (n_extra, dim) extra rows (other GPUs, a memory queue) that join
            the positives and the denominator but are not anchors.
        contrast_labels: (n_extra,) or (n_extra, classes) labels of the extra rows; required
            with ``labels``. Without labels or mask the extra rows are all negatives.
        contrast_mask: (batch, n_extra) positive weights of the extra rows, with ``mask``.
        chunk_size: None = dense path; an int = tiled path with that block size; "auto" =
            tiled from 8192 contrast rows on, dense below.
        reduction: "mean" over anchors with at least one positive, "sum" over them, or
            "none" for the (anchors,) vector with 0 where an anchor has no positive.
        check_inputs: check features for NaN/Inf and masks for negatives (one device sync).

    Returns:
        Scalar loss (float32, or float64 for float64 input), or (anchors,) for "none".

    Raises:
        ValueError: naming the offending argument for malformed input, or when no anchor has
            a positive.
    """
    _validate(features, labels, mask, temperature, base_temperature, variant, contrast_mode,
              positives_cap, denominator, contrast_features, contrast_labels, contrast_mask,
              chunk_size, reduction, check_inputs)
    compute_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    device = features.device
    if features.ndim == 2:
        features = features[:, None, :]
    batch, views, _ = features.shape
    # View-major rows: row v * batch + b is view v of sample b.
    rows = features.transpose(0, 1).reshape(batch * views, -1).to(compute_dtype)
    extra = 0
    if contrast_features is not None:
        extra = contrast_features.shape[0]
        rows = torch.cat([rows, contrast_features.to(device=device, dtype=compute_dtype)])
    if normalize:
        rows = F.normalize(rows, dim=1)
    if labels is not None:
        labels = labels.to(device)
        if contrast_labels is not None:
            contrast_labels = contrast_labels.to(device)

    local_rows = batch * views
    sample_of_row = torch.arange(local_rows, device=device) % batch
    num_anchors = batch if contrast_mode == "one" else local_rows
    anchor_index = torch.arange(num_anchors, device=device)

    if positives_cap is None and mask is None and (labels is None or labels.ndim == 1):
        # Equality rule on groups: no table at all (what the tiled path wants at large N).
        if labels is None:
            groups = torch.cat([sample_of_row, batch + torch.arange(extra, device=device)])
        else:
            groups = torch.cat([labels[sample_of_row]] + ([contrast_labels] if extra else []))
            groups = groups.long()
        spec = PositiveSpec(anchor_index, groups[:num_anchors], groups)
    else:
        table, hard = _build_table(labels, mask, contrast_labels, contrast_mask, batch, extra, device)
        negatives = table == 0
        if positives_cap is not None:
            table = _cap_table(table, views, positives_cap)
        contrast_group = torch.cat([sample_of_row, batch + torch.arange(extra, device=device)])
        spec = PositiveSpec(
            anchor_index, sample_of_row[:num_anchors], contrast_group,
            table.to(compute_dtype), negatives if positives_cap is not None else None,
        )

    anchors = rows[:num_anchors]
    n_contrast = rows.shape[0]
    chunk = AUTO_CHUNK if chunk_size == "auto" else chunk_size
    tiled = chunk_size is not None and (chunk_size != "auto" or n_contrast >= AUTO_TILED_THRESHOLD)
    inv_t = 1.0 / float(temperature)
    if tiled:
        row_losses, npos = _tiled_row_losses(anchors, rows, spec, inv_t, variant, denominator, chunk)
    else:
        sim = (anchors @ rows.T) * inv_t
        weights, in_den = spec.block(0, n_contrast)
        weights = weights.to(sim.dtype)
        npos = (weights > 0).sum(1)
        row_losses = _dense_row_losses(sim, weights, in_den, variant, denominator)

    valid = npos > 0
    n_valid = valid.sum()
    if check_inputs and int(n_valid) == 0:  # the only device sync, skipped with check_inputs=False
        raise ValueError(
            "no anchor has a positive: check labels/mask (does every class appear only once "
            "with a single view?)"
        )
    scale = 1.0 if base_temperature is None else float(temperature) / float(base_temperature)
    row_losses = torch.where(valid, row_losses, torch.zeros_like(row_losses)) * scale
    if reduction == "none":
        return row_losses
    if reduction == "sum":
        return row_losses.sum()
    return row_losses.sum() / n_valid.clamp_min(1)


def _tiled_row_losses(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float,
    variant: str, denominator: str, chunk: int,
) -> tuple[Tensor, Tensor]:
    """Dispatches the tiled computation: the fused Triton kernel where it applies, else PyTorch."""
    from supcon import kernels  # local import: the kernels module imports triton lazily

    if kernels.triton_applicable(anchors, spec, variant, denominator):
        return kernels.triton_row_losses(anchors, contrast, spec, inv_t, variant)
    return _TiledSupCon.apply(anchors, contrast, spec, inv_t, variant, denominator, chunk)


class SupConLoss(nn.Module):
    """Module form of :func:`supcon_loss`; the options are fixed at construction.

    Example:
        >>> loss_fn = SupConLoss(temperature=0.1)
        >>> z = torch.nn.functional.normalize(torch.randn(8, 2, 128), dim=-1)
        >>> loss = loss_fn(z, labels=torch.randint(0, 3, (8,)))
    """

    def __init__(
        self,
        temperature: float = 0.1,
        *,
        base_temperature: float | None = None,
        variant: Variant = "out",
        contrast_mode: Literal["all", "one"] = "all",
        positives_cap: int | None = None,
        denominator: Denominator = "all",
        normalize: bool = True,
        chunk_size: int | Literal["auto"] | None = "auto",
        reduction: Literal["mean", "sum", "none"] = "mean",
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        _check_choice("variant", variant, VARIANTS)
        _check_choice("contrast_mode", contrast_mode, CONTRAST_MODES)
        _check_choice("denominator", denominator, DENOMINATORS)
        _check_choice("reduction", reduction, REDUCTIONS)
        self.options = dict(
            temperature=temperature, base_temperature=base_temperature, variant=variant,
            contrast_mode=contrast_mode, positives_cap=positives_cap, denominator=denominator,
            normalize=normalize, chunk_size=chunk_size, reduction=reduction,
            check_inputs=check_inputs,
        )

    @property
    def temperature(self) -> float:
        return self.options["temperature"]

    def forward(
        self,
        features: Tensor,
        labels: Tensor | None = None,
        mask: Tensor | None = None,
        *,
        contrast_features: Tensor | None = None,
        contrast_labels: Tensor | None = None,
        contrast_mask: Tensor | None = None,
    ) -> Tensor:
        """See :func:`supcon_loss` for shapes and semantics."""
        return supcon_loss(
            features, labels, mask, contrast_features=contrast_features,
            contrast_labels=contrast_labels, contrast_mask=contrast_mask, **self.options,
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.options.items())
