"""The tiled path's fast case: L_out with the "all" denominator and no capped positives.

This case needs no mask at all: the denominator is every row but the anchor's own, and the
positive terms are linear in the contrast rows (``sum_j w_ij s_ij = z_i . sum_j w_ij z_j / t``),
so they come from per-group sums of rows (:class:`_PositiveSums`). The block sweeps then do one
matmul, one exp and one row sum per block forward, and one matmul, one exp and two gradient
matmuls per block backward.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from supcon.losses.logsumexp import _LOG2_E, _column_blocks, _finite, _OnlineLSE
from supcon.losses.spec import PositiveSpec

#: Largest spread ``2 * shift`` of exponents the fixed shift takes on: ``exp(-x)`` stays a normal
#: float (float32 underflows near 87.3, float64 near 708), and float32 keeps ``log(sum)`` within
#: 40 of 0, so its rounding matches a running max.
_SAFE_SHIFT_RANGE = {torch.float32: 40.0, torch.float64: 700.0}


def _compact_groups(anchor_group: Tensor, contrast_group: Tensor) -> tuple[Tensor, Tensor]:
    """Maps both group vectors onto shared ids in ``[0, M + N)`` (sort-based, no device sync).

    When the anchor groups are the first contrast groups (the same memory), only the contrast
    groups are sorted.
    """
    m = anchor_group.shape[0]
    if _is_prefix(anchor_group, contrast_group):
        ids = _compact(contrast_group)
        return ids[:m], ids
    ids = _compact(torch.cat([anchor_group, contrast_group]))
    return ids[:m], ids[m:]


def _is_prefix(first: Tensor, rows: Tensor) -> bool:
    """Whether ``first`` is ``rows[:len(first)]`` (same memory, same strides)."""
    return (first.data_ptr() == rows.data_ptr() and first.shape[0] <= rows.shape[0]
            and first.shape[1:] == rows.shape[1:] and first.stride() == rows.stride())


def _compact(keys: Tensor) -> Tensor:
    """Ids in ``[0, len(keys))``, equal exactly where the keys are (no device sync on CUDA)."""
    if keys.device.type == "cpu":  # unique's output size is known at once on CPU
        return torch.unique(keys, return_inverse=True)[1]
    sorted_keys, order = torch.sort(keys)
    starts = torch.ones_like(sorted_keys, dtype=torch.long)
    starts[0] = 0
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return torch.empty_like(starts).scatter_(0, order, torch.cumsum(starts, 0))


class _PositiveSums:
    """Weighted sums over each anchor's positives without an (anchors x contrast) mask.

    With ``w[i, j] = table[g_i, h_j]`` (``[g_i == h_j]`` without a table) and the anchor's own
    row ``k_i`` excluded, ``sum_{j != k_i} w_ij x_j = (table @ X)[g_i] - w[i, k_i] x_{k_i}``,
    where ``X[h]`` sums ``x`` over the contrast rows of group ``h``: O((M + N) * dim) work, plus
    one (Ga x Gc x dim) matmul with a table.
    """

    def __init__(self, spec: PositiveSpec, dtype: torch.dtype, indicator: bool = False,
                 prefix: bool = False) -> None:
        """``prefix``: the anchors are the first M contrast rows (``k_i = i``), as on the dense
        path; the own-row terms are then slices, and a weight of 1 there is not stored."""
        self.k = None if prefix else spec.anchor_index
        m = spec.anchor_group.shape[0]
        self.w_self: Tensor | None
        if spec.table is None:
            self.g, self.h = _compact_groups(spec.anchor_group, spec.contrast_group)
            self.table = None
            self.n_g = self.n_h = self.g.shape[0] + self.h.shape[0]
            own_group = self.h[:m] if prefix else self.h[self.k]
            # With the anchor groups a prefix of the contrast groups, w[i, i] = 1 for all i.
            same = prefix and _is_prefix(spec.anchor_group, spec.contrast_group)
            self.w_self = None if same else (self.g == own_group).to(dtype)
        else:
            self.g, self.h = spec.anchor_group, spec.contrast_group
            table = spec.table > 0 if indicator else spec.table
            self.table = table.to(dtype)
            self.n_g, self.n_h = self.table.shape
            self.w_self = self.table[self.g, self.h[:m] if prefix else self.h[self.k]]

    def _own(self, x: Tensor) -> Tensor:
        """(N, d) -> (M, d): ``w[i, k_i] x_{k_i}``."""
        own = x[: self.g.shape[0]] if self.k is None else x.index_select(0, self.k)
        return own if self.w_self is None else self.w_self[:, None] * own

    def over_contrast(self, x: Tensor) -> Tensor:
        """(N, d) values per contrast row -> (M, d): ``sum_{j != k_i} w_ij x_j`` per anchor."""
        per_group = x.new_zeros(self.n_h, x.shape[1]).index_add_(0, self.h, x)
        if self.table is not None:
            per_group = self.table @ per_group
        return per_group.index_select(0, self.g).sub_(self._own(x))

    def subtract_over_anchors(self, out: Tensor, y: Tensor) -> None:
        """``out -= over_anchors(y)`` in place, for (M, d) values per anchor and (N, d) ``out``:
        ``out_j -= sum_{i: k_i != j} w_ij y_i``."""
        per_group = y.new_zeros(self.n_g, y.shape[1]).index_add_(0, self.g, y)
        if self.table is not None:
            per_group = self.table.T @ per_group
        out.sub_(per_group.index_select(0, self.h))
        own = y if self.w_self is None else self.w_self[:, None] * y
        if self.k is None:
            out[: y.shape[0]] += own
        else:
            out.index_add_(0, self.k, own)


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
        # exp(s - shift) straight out of the matmul: [z_i / t, -shift_i] . [z_j, 1], in base 2
        # (log2(e) folded in: exp2 runs about 4x faster than exp on CPU).
        contrast_aug = torch.cat([contrast, contrast.new_ones(n, 1)], dim=1)
        for r0 in range(0, m_all, chunk):
            r1 = min(r0 + chunk, m_all)
            a_aug = torch.cat([anchors[r0:r1] * inv_t, -shift[r0:r1, None]], dim=1).mul_(_LOG2_E)
            total = anchors.new_zeros(r1 - r0)
            for c0 in _column_blocks(n, chunk):
                c1 = min(c0 + chunk, n)
                block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
                torch.mm(a_aug, contrast_aug[c0:c1].T, out=block)
                block.exp2_()
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


def _positive_terms(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float, prefix: bool = False,
) -> tuple[Tensor, Tensor, dict]:
    """The positive side of L_out from group sums, shared by the tiled and the dense route.

    Returns ``mean_sim`` (M,), ``sum_p wbar_p s_ip``; ``npos`` (M,) long; and the statistics
    :func:`_subtract_positive_grads` needs: ``positives`` (the sums), ``positive_sum`` (M, dim),
    ``sum_j w_ij z_j``, and ``total`` (M,), the weight sums (1 where there is no positive).
    ``prefix``: the anchors are the first M contrast rows (see :class:`_PositiveSums`).
    """
    positives = _PositiveSums(spec, anchors.dtype, prefix=prefix)
    ones = contrast.new_ones(contrast.shape[0], 1)
    # One pass for both: (M, dim + 1) = [sum_j w_ij z_j, sum_j w_ij].
    sums = positives.over_contrast(torch.cat([contrast, ones], dim=1))
    positive_sum, total = sums[:, :-1], sums[:, -1]
    counts = total if spec.table is None else (
        _PositiveSums(spec, anchors.dtype, indicator=True, prefix=prefix).over_contrast(ones)[:, 0])
    npos = counts.long()  # sums of ones: exact
    if spec.table is None:  # the weights are the counts
        safe_total = total.clamp_min(1.0)
    else:
        safe_total = torch.where(npos > 0, total, torch.ones_like(total))
    mean_sim = torch.linalg.vecdot(anchors, positive_sum).mul_(inv_t).div_(safe_total)
    return mean_sim, npos, {"positives": positives, "positive_sum": positive_sum,
                            "total": safe_total}


def _subtract_positive_grads(
    grad_anchors: Tensor, grad_contrast: Tensor, anchors: Tensor, saved: dict, upstream: Tensor,
) -> None:
    """Subtracts, in place, the gradients of ``sum_i upstream_i * sum_j wbar_ij (z_i . z_j)``
    w.r.t. anchors and contrast rows (``upstream`` already holds the ``1 / t``), from the group
    sums. ``grad_anchors`` may be a view of ``grad_contrast`` (the anchors' rows)."""
    coef = (upstream / saved["total"])[:, None]
    grad_anchors.addcmul_(saved["positive_sum"], coef, value=-1.0)
    saved["positives"].subtract_over_anchors(grad_contrast, coef * anchors)


def _out_all_forward(
    anchors: Tensor, contrast: Tensor, spec: PositiveSpec, inv_t: float, chunk: int,
) -> tuple[Tensor, Tensor, dict]:
    """Losses, positive counts and saved statistics for L_out with the "all" denominator."""
    mean_sim, npos, saved = _positive_terms(anchors, contrast, spec, inv_t)
    log_den = _lse_without_self(anchors, contrast, spec.anchor_index, inv_t, chunk)
    saved["log_den"] = log_den
    return log_den - mean_sim, npos, saved


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
    grad_anchors, grad_contrast = torch.zeros_like(anchors), torch.zeros_like(contrast)
    _subtract_positive_grads(grad_anchors, grad_contrast, anchors, saved, upstream)
    log_den = _finite(saved["log_den"])
    contrast_aug = torch.cat([contrast, contrast.new_ones(n, 1)], dim=1)
    buffer = anchors.new_empty(min(chunk, m_all) * min(chunk, n))
    for r0 in range(0, m_all, chunk):
        r1 = min(r0 + chunk, m_all)
        a_aug = torch.cat([anchors[r0:r1] * inv_t, -log_den[r0:r1, None]], dim=1).mul_(_LOG2_E)
        a_up = anchors[r0:r1] * upstream[r0:r1, None]
        softmax_sum = anchors.new_zeros(r1 - r0, anchors.shape[1])
        for c0 in _column_blocks(n, chunk):
            c1 = min(c0 + chunk, n)
            block = buffer[: (r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0)
            torch.mm(a_aug, contrast_aug[c0:c1].T, out=block)
            block.exp2_()
            _set_self(block, anchor_index[r0:r1] - c0, 0.0)  # may be inf before: set, not scale
            softmax_sum.addmm_(block, contrast[c0:c1])
            grad_contrast[c0:c1].addmm_(block.T, a_up)
        grad_anchors[r0:r1] += upstream[r0:r1, None] * softmax_sum
    return grad_anchors, grad_contrast
