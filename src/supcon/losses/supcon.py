"""The public loss: :func:`supcon_loss` (which picks the dense or the tiled path) and its
module wrapper :class:`SupConLoss`."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon.losses.dense import dense_row_losses
from supcon.losses.dense_out_all import dense_out_all_row_losses, takes_dense_out_all
from supcon.losses.spec import build_positive_spec
from supcon.losses.tiled import tiled_row_losses
from supcon.losses.validation import (ContrastMode, Denominator, Reduction, Variant,
                                      _check_choices, _check_temperature, _validate)

__all__ = ["supcon_loss", "SupConLoss", "AUTO_DENSE_MAX_BYTES", "AUTO_TILED_THRESHOLD",
           "AUTO_CHUNK"]

# The choices of chunk_size="auto", per device type ("cuda" stands for every non-CPU device).
# CPU: measured with benchmarks/loss.py (float32, dim 128, one thread, 2026-12-02); CUDA: the
# values the CUDA path had before, not re-measured (no GPU at hand).

#: L_out with the "all" denominator stays on the dense path while its one saved (anchors x
#: contrast) matrix takes at most this many bytes. On CPU its three matmuls beat the tiled
#: path's four at every measured size (256 .. 16384 rows); 1 GiB is 16384 x 16384 float32, an
#: eighth of what the SupContrast-style code holds there. Past it, the tiled path.
AUTO_DENSE_MAX_BYTES = {"cpu": 2**30, "cuda": 8191 * 8191 * 4}
#: The other options (L_in, other denominators, a positives cap) switch to the tiled path at
#: this many contrast rows. CPU: at 4096 rows the tiled path took half the time of autograd
#: through the dense matrix for L_in, "one_positive" and a cap alike; at 2048 they were even.
AUTO_TILED_THRESHOLD = {"cpu": 4096, "cuda": 8192}
#: Block size of the tiled path under "auto": 1024 x 1024 blocks (4 MiB in float32).
AUTO_CHUNK = {"cpu": 1024, "cuda": 1024}


def supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    variant: Variant = "out",
    contrast_mode: ContrastMode = "all",
    positives_cap: int | None = None,
    denominator: Denominator = "all",
    normalize: bool = True,
    contrast_features: Tensor | None = None,
    contrast_labels: Tensor | None = None,
    contrast_mask: Tensor | None = None,
    chunk_size: int | Literal["auto"] | None = "auto",
    reduction: Reduction = "mean",
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
        labels: (batch,) integer classes >= 0, or (batch, classes) 0/1 multi-hot, bool or int
            (floats are refused: soft positives go in ``mask``). Exclusive with ``mask``.
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
        contrast_labels: (n_extra,) or (n_extra, classes) labels of the extra rows (-1: unlabeled);
            required with ``labels``. Without labels or mask the extra rows are all negatives.
        contrast_mask: (batch, n_extra) positive weights of the extra rows, with ``mask``.
        chunk_size: None = dense path; an int = tiled path with that block size; "auto" =
            per device type, from measured crossovers: L_out with the "all" denominator (no
            cap) stays dense while its one (anchors x contrast) matrix fits in
            :data:`AUTO_DENSE_MAX_BYTES` (CPU: 1 GiB, 16384 x 16384 float32; CUDA: below 8192
            rows), the other options while there are fewer than :data:`AUTO_TILED_THRESHOLD`
            contrast rows (CPU 4096, CUDA 8192); past that, tiled in blocks of
            :data:`AUTO_CHUNK` (1024).
        reduction: "mean" over anchors with at least one positive, "sum" over them, or
            "none" for the (anchors,) vector with 0 where an anchor has no positive.
        check_inputs: check values (syncs): NaN/Inf, negative mask or labels, multi-hot not 0/1.

    Returns:
        Scalar loss (float32, or float64 for float64 input), or (anchors,) for "none".

    Raises:
        ValueError: naming the offending argument for malformed input, or when no anchor has
            a positive.
    """
    labels, mask, contrast_labels, contrast_mask = _validate(
        features, labels, mask, temperature, base_temperature, variant, contrast_mode, positives_cap,
        denominator, contrast_features, contrast_labels, contrast_mask, chunk_size, reduction, check_inputs)
    raw_rows, batch, views = _contrast_rows(features, contrast_features)
    num_anchors = batch if contrast_mode == "one" else batch * views
    spec = build_positive_spec(
        labels, mask, contrast_labels, contrast_mask, batch=batch, views=views,
        extra=raw_rows.shape[0] - batch * views, num_anchors=num_anchors,
        positives_cap=positives_cap, dtype=raw_rows.dtype, device=raw_rows.device,
    )
    inv_t = 1.0 / float(temperature)
    path, chunk = _choose_path(chunk_size, raw_rows, num_anchors,
                               takes_dense_out_all(spec, variant, denominator))
    if path == "dense_out_all":  # normalises inside: the whole loss is one autograd node
        row_losses, npos = dense_out_all_row_losses(raw_rows, num_anchors, spec, inv_t, normalize)
    else:
        rows = F.normalize(raw_rows, dim=1) if normalize else raw_rows
        anchors = rows[:num_anchors]
        if path == "tiled":
            row_losses, npos = tiled_row_losses(anchors, rows, spec, inv_t, variant, denominator,
                                                chunk)
        else:
            row_losses, npos = dense_row_losses(anchors, rows, spec, inv_t, variant, denominator)
    scale = 1.0 if base_temperature is None else float(temperature) / float(base_temperature)
    return _reduce(row_losses, npos, scale, reduction, check_inputs,
                   zeroed=path == "dense_out_all")


def _contrast_rows(features: Tensor, contrast_features: Tensor | None) -> tuple[Tensor, int, int]:
    """All contrast rows in the compute dtype (float64 for float64 input, else float32): the
    batch's views view-major (row ``v * batch + b``), then the extra rows; not yet normalised.
    Returns (rows, batch, views)."""
    compute_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    if features.ndim == 2:
        features = features[:, None, :]
    batch, views, _ = features.shape
    rows = features.transpose(0, 1).reshape(batch * views, -1).to(compute_dtype)
    if contrast_features is not None:
        rows = torch.cat([rows, contrast_features.to(device=features.device, dtype=compute_dtype)])
    return rows, batch, views


def _choose_path(
    chunk_size: int | str | None, rows: Tensor, num_anchors: int, out_all: bool,
) -> tuple[str, int]:
    """("dense_out_all" | "dense" | "tiled", block size) for this call.

    An int always tiles with that block size and None never tiles. "auto" follows the
    measured crossovers of :data:`AUTO_DENSE_MAX_BYTES` and :data:`AUTO_TILED_THRESHOLD` for
    the rows' device type (the "cpu" entries; every other device takes the "cuda" ones).
    ``out_all``: L_out with the "all" denominator and no cap, which the saved-matrix route
    (:mod:`supcon.losses.dense_out_all`) computes.
    """
    n = rows.shape[0]
    if chunk_size is None:
        return ("dense_out_all" if out_all else "dense"), 0
    if chunk_size != "auto":
        return "tiled", int(chunk_size)
    device = "cpu" if rows.device.type == "cpu" else "cuda"
    if out_all:
        matrix_bytes = num_anchors * n * rows.element_size()
        if matrix_bytes <= AUTO_DENSE_MAX_BYTES[device]:
            return "dense_out_all", 0
        return "tiled", AUTO_CHUNK[device]
    if n < AUTO_TILED_THRESHOLD[device]:
        return "dense", 0
    return "tiled", AUTO_CHUNK[device]


def _reduce(
    row_losses: Tensor, npos: Tensor, scale: float, reduction: str, check_inputs: bool,
    zeroed: bool = False,
) -> Tensor:
    """Zeroes anchors without positives (unless ``zeroed``: already done), scales, and reduces
    over the anchors with one."""
    valid = npos > 0
    n_valid = valid.sum()
    if check_inputs:  # the only device sync, skipped with check_inputs=False
        count = int(n_valid)
        if count == 0:
            raise ValueError(
                "no anchor has a positive: check labels/mask (does every class appear only once "
                "with a single view?)"
            )
        n_valid = count
    else:
        n_valid = n_valid.clamp_min(1)
    if not zeroed:
        row_losses = torch.where(valid, row_losses, torch.zeros_like(row_losses))
    if scale != 1.0:
        row_losses = row_losses * scale
    if reduction == "none":
        return row_losses
    if reduction == "sum":
        return row_losses.sum()
    return row_losses.sum() / n_valid


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
        contrast_mode: ContrastMode = "all",
        positives_cap: int | None = None,
        denominator: Denominator = "all",
        normalize: bool = True,
        chunk_size: int | Literal["auto"] | None = "auto",
        reduction: Reduction = "mean",
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        _check_temperature(temperature)
        _check_choices(variant, contrast_mode, denominator, reduction)
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
