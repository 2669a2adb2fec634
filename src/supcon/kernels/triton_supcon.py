"""Fused Triton kernels for the tiled SupCon loss (Khosla et al. 2020, arXiv 2004.11362).

The same math as the PyTorch tiled path (``supcon.losses.tiled._TiledSupCon``) for the cases that
matter at scale: positives given by equality of integer groups (class labels, or SimCLR's
instance ids), optionally with extra contrast rows, the ``"all"`` denominator, and the ``"out"``
(eq. 2) or ``"in"`` (eq. 3) variant. The (anchors x contrast) similarity matrix never exists in
memory: every kernel recomputes its tiles of ``s = a . c / t`` with ``tl.dot``.

Three kernels, no atomics (so the gradients are deterministic):

* forward, one program per block of ``BLOCK_M`` anchors: sweeps the contrast rows in blocks of
  ``BLOCK_N`` with an online log-sum-exp (running max and sum) over the denominator set, counts
  the positives and sums their similarities (and, for ``"in"``, runs a second online
  log-sum-exp over the positives). Writes the loss, the positive count and the log-sum-exps.
* backward for the anchors, one program per block of anchors: recomputes each tile, forms
  ``ds = g * (softmax_den - wbar)`` (``"out"``) or ``g * (softmax_den - softmax_pos)``
  (``"in"``) and accumulates ``ds @ c``.
* backward for the contrast rows, one program per block of contrast rows: recomputes the
  transposed tiles and accumulates ``ds^T @ a``.

Inside the kernels everything is float32; the dot products use ``tf32x3`` on GPUs (three TF32
tensor-core passes, float32 accuracy), so the result matches the float32 PyTorch path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["supports", "row_losses", "LaunchConfig", "MAX_DIM"]

#: Widest embedding the kernels take (the whole row of a tile lives in registers).
MAX_DIM = 256
_INPUT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_VARIANTS = ("out", "in")
#: Float32 products as three TF32 tensor-core passes: float32 accuracy (plain "tf32" would
#: perturb the logits by ~1e-3 at t = 0.1), far faster than "ieee" (no tensor cores).
_DOT_PRECISION = "tf32x3"


@dataclass(frozen=True)
class LaunchConfig:
    """Tile sizes and launch parameters of one kernel.

    Attributes:
        block_rows: rows each program owns (anchors in the forward and in the anchor-gradient
            kernel, contrast rows in the contrast-gradient kernel); a power of two >= 16.
        block_cols: rows each step of the program's loop sweeps (the other side).
        block_d: the embedding width padded to a power of two >= 16.
        num_warps: warps per program.
        num_stages: software-pipelining depth of the loop.
    """

    block_rows: int
    block_cols: int
    block_d: int
    num_warps: int
    num_stages: int


def _launch_configs(dim: int) -> tuple[LaunchConfig, LaunchConfig]:
    """(forward, backward) launch parameters for an embedding width ``dim``.

    Chosen for an H100 (sm_90, wgmma needs 64-row tiles per warp group) from ptxas register
    and spill reports: the backward holds a (rows x D) float32 accumulator besides the split
    operands of the tf32x3 products, so it sweeps narrower column steps than the forward.
    """
    block_d = max(16, triton.next_power_of_2(dim))
    if block_d <= 64:
        return (LaunchConfig(64, 64, block_d, num_warps=8, num_stages=3),
                LaunchConfig(64, 32, block_d, num_warps=8, num_stages=3))
    if block_d <= 128:
        return (LaunchConfig(64, 64, block_d, num_warps=8, num_stages=2),
                LaunchConfig(64, 16, block_d, num_warps=8, num_stages=2))
    return (LaunchConfig(64, 16, block_d, num_warps=8, num_stages=2),
            LaunchConfig(64, 16, block_d, num_warps=8, num_stages=2))


def supports(anchors: Tensor, spec: object, variant: str, denominator: str) -> bool:
    """Whether the fused kernels implement this call.

    Args:
        anchors: (M, D) anchor embeddings.
        spec: the loss's ``PositiveSpec``; only the equality rule (``table is None``) is fused.
        variant: "out" or "in".
        denominator: only "all" is fused.

    Returns:
        True for float32/bfloat16/float16 anchors with ``D <= MAX_DIM`` and equality groups.
    """
    if variant not in _VARIANTS or denominator != "all":
        return False
    if getattr(spec, "table", None) is not None or getattr(spec, "negatives", None) is not None:
        return False
    groups = (getattr(spec, "anchor_index", None), getattr(spec, "anchor_group", None),
              getattr(spec, "contrast_group", None))
    if any(g is None or g.is_floating_point() or g.ndim != 1 for g in groups):
        return False
    return (anchors.ndim == 2 and anchors.dtype in _INPUT_DTYPES
            and 1 <= anchors.shape[1] <= MAX_DIM)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _load_rows(ptr, rows, rows_ok, stride_row, stride_col, offs_d, d_ok):
    """A (len(rows) x BLOCK_D) float32 tile of a 2-D tensor, zero outside it (ragged edges)."""
    return tl.load(ptr + rows.to(tl.int64)[:, None] * stride_row + offs_d[None, :] * stride_col,
                   mask=rows_ok[:, None] & d_ok[None, :], other=0.0).to(tl.float32)


@triton.jit
def _supcon_fwd_kernel(
    a_ptr, c_ptr, anchor_index_ptr, anchor_group_ptr, contrast_group_ptr,
    loss_ptr, npos_ptr, lse_ptr, lse_pos_ptr,
    M, N, D, stride_am, stride_ad, stride_cn, stride_cd, inv_t,
    VARIANT_IN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per BLOCK_M anchors; sweeps all contrast rows with an online LSE."""
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < M
    d_ok = offs_d < D
    a = _load_rows(a_ptr, offs_m, row_ok, stride_am, stride_ad, offs_d, d_ok)
    self_col = tl.load(anchor_index_ptr + offs_m, mask=row_ok, other=-1)
    group = tl.load(anchor_group_ptr + offs_m, mask=row_ok, other=0)

    neg_inf = float("-inf")
    m_den = tl.full([BLOCK_M], neg_inf, tl.float32)  # running max over the denominator set
    l_den = tl.zeros([BLOCK_M], tl.float32)  # running sum of exp(s - m_den)
    m_pos = tl.full([BLOCK_M], neg_inf, tl.float32)  # the same over the positives ("in")
    l_pos = tl.zeros([BLOCK_M], tl.float32)
    npos = tl.zeros([BLOCK_M], tl.int32)
    sum_pos_sim = tl.zeros([BLOCK_M], tl.float32)

    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        col_ok = offs_n < N
        c = _load_rows(c_ptr, offs_n, col_ok, stride_cn, stride_cd, offs_d, d_ok)
        col_group = tl.load(contrast_group_ptr + offs_n, mask=col_ok, other=0)
        s = tl.dot(a, tl.trans(c), input_precision=DOT_PRECISION) * inv_t
        keep = col_ok[None, :] & (offs_n[None, :] != self_col[:, None])
        positive = keep & (group[:, None] == col_group[None, :])

        s_den = tl.where(keep, s, neg_inf)
        new_max = tl.maximum(m_den, tl.max(s_den, axis=1))
        shift = tl.where(new_max == neg_inf, 0.0, new_max)
        l_den = l_den * tl.exp(m_den - shift) + tl.sum(tl.exp(s_den - shift[:, None]), axis=1)
        m_den = new_max

        npos += tl.sum(positive.to(tl.int32), axis=1)
        sum_pos_sim += tl.sum(tl.where(positive, s, 0.0), axis=1)
        if VARIANT_IN:
            s_pos = tl.where(positive, s, neg_inf)
            new_max_pos = tl.maximum(m_pos, tl.max(s_pos, axis=1))
            shift_pos = tl.where(new_max_pos == neg_inf, 0.0, new_max_pos)
            l_pos = (l_pos * tl.exp(m_pos - shift_pos)
                     + tl.sum(tl.exp(s_pos - shift_pos[:, None]), axis=1))
            m_pos = new_max_pos

    # log(0) = -inf for an empty set, exactly like the PyTorch path.
    lse = tl.log(l_den) + tl.where(m_den == neg_inf, 0.0, m_den)
    total = tl.where(npos > 0, npos, 1).to(tl.float32)
    if VARIANT_IN:
        # No positives: 0 in place of -inf (the PyTorch path's convention); the caller drops it.
        has_pos = npos > 0
        lse_pos = tl.where(has_pos, tl.log(tl.where(has_pos, l_pos, 1.0)) + m_pos, 0.0)
        loss = -((lse_pos - tl.log(total)) - lse)
        tl.store(lse_pos_ptr + offs_m, lse_pos, mask=row_ok)
    else:
        loss = -(sum_pos_sim / total - lse)
    tl.store(loss_ptr + offs_m, loss, mask=row_ok)
    tl.store(npos_ptr + offs_m, npos.to(tl.int64), mask=row_ok)
    # Backward needs a finite LSE: an empty denominator has no softmax (and no gradient).
    tl.store(lse_ptr + offs_m, tl.where(lse == neg_inf, 0.0, lse), mask=row_ok)


@triton.jit
def _supcon_bwd_anchor_kernel(
    a_ptr, c_ptr, anchor_index_ptr, anchor_group_ptr, contrast_group_ptr,
    grad_loss_ptr, npos_ptr, lse_ptr, lse_pos_ptr, grad_a_ptr,
    M, N, D, stride_am, stride_ad, stride_cn, stride_cd, stride_gm, stride_gd, inv_t,
    VARIANT_IN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per BLOCK_M anchors: d loss / d a = sum over column tiles of ds @ c / t."""
    pid = tl.program_id(0)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, BLOCK_D)
    row_ok = offs_m < M
    d_ok = offs_d < D
    a = _load_rows(a_ptr, offs_m, row_ok, stride_am, stride_ad, offs_d, d_ok)
    self_col = tl.load(anchor_index_ptr + offs_m, mask=row_ok, other=-1)
    group = tl.load(anchor_group_ptr + offs_m, mask=row_ok, other=0)
    g = tl.load(grad_loss_ptr + offs_m, mask=row_ok, other=0.0)
    lse = tl.load(lse_ptr + offs_m, mask=row_ok, other=0.0)
    npos = tl.load(npos_ptr + offs_m, mask=row_ok, other=0)
    g_over_total = g / tl.where(npos > 0, npos, 1).to(tl.float32)
    if VARIANT_IN:
        lse_pos = tl.load(lse_pos_ptr + offs_m, mask=row_ok, other=0.0)

    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    for n0 in range(0, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        col_ok = offs_n < N
        c = _load_rows(c_ptr, offs_n, col_ok, stride_cn, stride_cd, offs_d, d_ok)
        col_group = tl.load(contrast_group_ptr + offs_n, mask=col_ok, other=0)
        s = tl.dot(a, tl.trans(c), input_precision=DOT_PRECISION) * inv_t
        keep = col_ok[None, :] & (offs_n[None, :] != self_col[:, None])
        positive = keep & (group[:, None] == col_group[None, :])
        ds = tl.where(keep, tl.exp(s - lse[:, None]), 0.0) * g[:, None]
        if VARIANT_IN:
            ds -= tl.where(positive, tl.exp(s - lse_pos[:, None]), 0.0) * g[:, None]
        else:
            ds -= tl.where(positive, g_over_total[:, None], 0.0)
        acc += tl.dot(ds, c, input_precision=DOT_PRECISION)

    tl.store(grad_a_ptr + offs_m.to(tl.int64)[:, None] * stride_gm + offs_d[None, :] * stride_gd,
             acc * inv_t, mask=row_ok[:, None] & d_ok[None, :])


@triton.jit
def _supcon_bwd_contrast_kernel(
    a_ptr, c_ptr, anchor_index_ptr, anchor_group_ptr, contrast_group_ptr,
    grad_loss_ptr, npos_ptr, lse_ptr, lse_pos_ptr, grad_c_ptr,
    M, N, D, stride_am, stride_ad, stride_cn, stride_cd, stride_gn, stride_gd, inv_t,
    VARIANT_IN: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program per BLOCK_N contrast rows: d loss / d c = sum over anchor tiles of ds^T @ a / t.

    Works on transposed tiles (contrast rows x anchors) so that no tile is transposed twice.
    """
    pid = tl.program_id(0)
    offs_n = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    col_ok = offs_n < N
    d_ok = offs_d < D
    c = _load_rows(c_ptr, offs_n, col_ok, stride_cn, stride_cd, offs_d, d_ok)
    col_group = tl.load(contrast_group_ptr + offs_n, mask=col_ok, other=0)

    acc = tl.zeros([BLOCK_N, BLOCK_D], tl.float32)
    for m0 in range(0, M, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        row_ok = offs_m < M
        a = _load_rows(a_ptr, offs_m, row_ok, stride_am, stride_ad, offs_d, d_ok)
        self_col = tl.load(anchor_index_ptr + offs_m, mask=row_ok, other=-1)
        group = tl.load(anchor_group_ptr + offs_m, mask=row_ok, other=0)
        g = tl.load(grad_loss_ptr + offs_m, mask=row_ok, other=0.0)
        lse = tl.load(lse_ptr + offs_m, mask=row_ok, other=0.0)
        npos = tl.load(npos_ptr + offs_m, mask=row_ok, other=0)

        s_t = tl.dot(c, tl.trans(a), input_precision=DOT_PRECISION) * inv_t  # (BLOCK_N, BLOCK_M)
        keep = (row_ok[None, :] & col_ok[:, None]) & (offs_n[:, None] != self_col[None, :])
        positive = keep & (col_group[:, None] == group[None, :])
        ds_t = tl.where(keep, tl.exp(s_t - lse[None, :]), 0.0) * g[None, :]
        if VARIANT_IN:
            lse_pos = tl.load(lse_pos_ptr + offs_m, mask=row_ok, other=0.0)
            ds_t -= tl.where(positive, tl.exp(s_t - lse_pos[None, :]), 0.0) * g[None, :]
        else:
            g_over_total = g / tl.where(npos > 0, npos, 1).to(tl.float32)
            ds_t -= tl.where(positive, g_over_total[None, :], 0.0)
        acc += tl.dot(ds_t, a, input_precision=DOT_PRECISION)

    tl.store(grad_c_ptr + offs_n.to(tl.int64)[:, None] * stride_gn + offs_d[None, :] * stride_gd,
             acc * inv_t, mask=col_ok[:, None] & d_ok[None, :])


# ---------------------------------------------------------------------------------------------
# Autograd wrapper
# ---------------------------------------------------------------------------------------------


class _FusedSupCon(torch.autograd.Function):
    """Per-anchor losses from the fused kernels; backward recomputes the similarity tiles."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, anchors: Tensor, contrast: Tensor, anchor_index: Tensor, anchor_group: Tensor,
        contrast_group: Tensor, inv_t: float, variant_in: bool,
        configs: tuple[LaunchConfig, LaunchConfig],
    ) -> tuple[Tensor, Tensor]:
        m, dim = anchors.shape
        n = contrast.shape[0]
        loss = torch.empty(m, dtype=torch.float32, device=anchors.device)
        npos = torch.empty(m, dtype=torch.long, device=anchors.device)
        lse = torch.empty(m, dtype=torch.float32, device=anchors.device)
        lse_pos = torch.empty(m if variant_in else 1, dtype=torch.float32, device=anchors.device)
        forward_config = configs[0]
        if m > 0:
            _supcon_fwd_kernel[(triton.cdiv(m, forward_config.block_rows),)](
                anchors, contrast, anchor_index, anchor_group, contrast_group,
                loss, npos, lse, lse_pos,
                m, n, dim, anchors.stride(0), anchors.stride(1),
                contrast.stride(0), contrast.stride(1), inv_t,
                VARIANT_IN=variant_in, DOT_PRECISION=_DOT_PRECISION,
                BLOCK_M=forward_config.block_rows, BLOCK_N=forward_config.block_cols,
                BLOCK_D=forward_config.block_d,
                num_warps=forward_config.num_warps, num_stages=forward_config.num_stages,
            )
        ctx.save_for_backward(anchors, contrast, anchor_index, anchor_group, contrast_group,
                              npos, lse, lse_pos)
        ctx.inv_t, ctx.variant_in, ctx.config = inv_t, variant_in, configs[1]
        ctx.mark_non_differentiable(npos)
        return loss, npos

    @staticmethod
    def backward(ctx, grad_loss: Tensor, _grad_npos: Tensor):  # type: ignore[override]
        anchors, contrast, anchor_index, anchor_group, contrast_group, npos, lse, lse_pos = (
            ctx.saved_tensors)
        config, inv_t, variant_in = ctx.config, ctx.inv_t, ctx.variant_in
        m, dim = anchors.shape
        n = contrast.shape[0]
        grad_loss = grad_loss.to(torch.float32).contiguous()
        # Every kernel program writes its full (rows x D) slice: no zero-fill needed.
        grad_anchors = torch.empty_like(anchors) if ctx.needs_input_grad[0] else None
        grad_contrast = torch.empty_like(contrast) if ctx.needs_input_grad[1] else None
        if m == 0 or n == 0:
            grad_anchors = None if grad_anchors is None else grad_anchors.zero_()
            grad_contrast = None if grad_contrast is None else grad_contrast.zero_()
            return grad_anchors, grad_contrast, None, None, None, None, None, None
        common = dict(VARIANT_IN=variant_in, DOT_PRECISION=_DOT_PRECISION, BLOCK_D=config.block_d,
                      num_warps=config.num_warps, num_stages=config.num_stages)
        if grad_anchors is not None:
            _supcon_bwd_anchor_kernel[(triton.cdiv(m, config.block_rows),)](
                anchors, contrast, anchor_index, anchor_group, contrast_group,
                grad_loss, npos, lse, lse_pos, grad_anchors,
                m, n, dim, anchors.stride(0), anchors.stride(1),
                contrast.stride(0), contrast.stride(1),
                grad_anchors.stride(0), grad_anchors.stride(1), inv_t,
                BLOCK_M=config.block_rows, BLOCK_N=config.block_cols, **common,
            )
        if grad_contrast is not None:
            # Programs own contrast rows here: BLOCK_N is the program's tile, BLOCK_M the step.
            _supcon_bwd_contrast_kernel[(triton.cdiv(n, config.block_rows),)](
                anchors, contrast, anchor_index, anchor_group, contrast_group,
                grad_loss, npos, lse, lse_pos, grad_contrast,
                m, n, dim, anchors.stride(0), anchors.stride(1),
                contrast.stride(0), contrast.stride(1),
                grad_contrast.stride(0), grad_contrast.stride(1), inv_t,
                BLOCK_M=config.block_cols, BLOCK_N=config.block_rows, **common,
            )
        return grad_anchors, grad_contrast, None, None, None, None, None, None


def row_losses(
    anchors: Tensor, contrast: Tensor, spec: object, inv_t: float, variant: str,
) -> tuple[Tensor, Tensor]:
    """Per-anchor SupCon losses and positive counts from the fused kernels.

    Same value and gradient as the PyTorch tiled path with ``denominator="all"``: for anchor
    ``i`` with positives ``P(i) = {j != anchor_index[i]: contrast_group[j] == anchor_group[i]}``
    and ``s_ij = a_i . c_j * inv_t`` over every ``j != anchor_index[i]``::

        "out": loss_i = -(mean_{p in P(i)} s_ip - LSE_j s_ij)
        "in":  loss_i = -(LSE_{p in P(i)} s_ip - log |P(i)| - LSE_j s_ij)

    Anchors without positives get a placeholder (``LSE_j s_ij``) that the caller discards.

    Args:
        anchors: (M, D) float32/bfloat16/float16 anchor embeddings (see :func:`supports`).
        contrast: (N, D) contrast embeddings, same dtype and device.
        spec: ``PositiveSpec`` with ``anchor_index`` (M,), ``anchor_group`` (M,) and
            ``contrast_group`` (N,) integer vectors and no table.
        inv_t: inverse temperature ``1 / t``.
        variant: "out" or "in".

    Returns:
        loss: (M,) float32, differentiable w.r.t. ``anchors`` and ``contrast``.
        npos: (M,) long, the number of positives of each anchor.
    """
    if not supports(anchors, spec, variant, "all"):
        raise ValueError(
            f"the fused kernel takes (M, D <= {MAX_DIM}) float32/bfloat16/float16 anchors, "
            f"equality groups and variant 'out' or 'in'; got anchors {tuple(anchors.shape)} "
            f"{anchors.dtype}, variant {variant!r}"
        )
    if contrast.ndim != 2 or contrast.shape[1] != anchors.shape[1]:
        raise ValueError(
            f"contrast must have shape (N, {anchors.shape[1]}), got {tuple(contrast.shape)}"
        )
    m, n = anchors.shape[0], contrast.shape[0]
    if spec.anchor_index.shape[0] != m or spec.anchor_group.shape[0] != m:
        raise ValueError(
            f"spec.anchor_index and spec.anchor_group must have {m} entries (one per anchor), got "
            f"{spec.anchor_index.shape[0]} and {spec.anchor_group.shape[0]}"
        )
    if spec.contrast_group.shape[0] != n:
        raise ValueError(
            f"spec.contrast_group must have {n} entries (one per contrast row), "
            f"got {spec.contrast_group.shape[0]}"
        )
    # Float32 inside; autograd casts the gradients back to the input dtype.
    anchors_f32 = anchors.to(torch.float32).contiguous()
    contrast_f32 = contrast.to(device=anchors.device, dtype=torch.float32).contiguous()
    groups = [t.to(device=anchors.device, dtype=torch.long).contiguous()
              for t in (spec.anchor_index, spec.anchor_group, spec.contrast_group)]
    return _FusedSupCon.apply(anchors_f32, contrast_f32, *groups, float(inv_t), variant == "in",
                              _launch_configs(anchors.shape[1]))
