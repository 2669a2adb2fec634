"""The public loss: :func:`supcon_loss` (which picks the dense or the tiled path) and its
module wrapper :class:`SupConLoss`."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon.losses.dense import dense_row_losses
from supcon.losses.spec import build_positive_spec
from supcon.losses.tiled import tiled_row_losses
from supcon.losses.validation import (ContrastMode, Denominator, Reduction, Variant,
                                      _check_choices, _check_temperature, _validate)

__all__ = ["supcon_loss", "SupConLoss", "AUTO_TILED_THRESHOLD", "AUTO_CHUNK"]

#: ``chunk_size="auto"`` switches to the tiled path at this many contrast rows.
AUTO_TILED_THRESHOLD = 8192
#: Block size the tiled path uses under ``chunk_size="auto"``: 1024 x 1024 blocks (4 MiB in
#: float32). On an idle CPU they are faster than 2048 x 2048 blocks, which only pay off where
#: threads compete for cores (a quarter of the parallel regions) or, on CUDA, in fewer launches.
AUTO_CHUNK = 1024


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
            tiled (blocks of :data:`AUTO_CHUNK` = 1024) from :data:`AUTO_TILED_THRESHOLD` =
            8192 contrast rows on, dense below.
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
    rows, batch, views = _contrast_rows(features, contrast_features, normalize)
    num_anchors = batch if contrast_mode == "one" else batch * views
    spec = build_positive_spec(
        labels, mask, contrast_labels, contrast_mask, batch=batch, views=views,
        extra=rows.shape[0] - batch * views, num_anchors=num_anchors, positives_cap=positives_cap,
        dtype=rows.dtype, device=rows.device,
    )
    anchors = rows[:num_anchors]
    inv_t = 1.0 / float(temperature)
    if _takes_tiled_path(chunk_size, rows.shape[0]):
        chunk = AUTO_CHUNK if chunk_size == "auto" else chunk_size
        row_losses, npos = tiled_row_losses(anchors, rows, spec, inv_t, variant, denominator, chunk)
    else:
        row_losses, npos = dense_row_losses(anchors, rows, spec, inv_t, variant, denominator)
    scale = 1.0 if base_temperature is None else float(temperature) / float(base_temperature)
    return _reduce(row_losses, npos, scale, reduction, check_inputs)


def _contrast_rows(
    features: Tensor, contrast_features: Tensor | None, normalize: bool
) -> tuple[Tensor, int, int]:
    """All contrast rows in the compute dtype (float64 for float64 input, else float32): the
    batch's views view-major (row ``v * batch + b``), then the extra rows; L2-normalised with
    ``normalize``. Returns (rows, batch, views)."""
    compute_dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    if features.ndim == 2:
        features = features[:, None, :]
    batch, views, _ = features.shape
    rows = features.transpose(0, 1).reshape(batch * views, -1).to(compute_dtype)
    if contrast_features is not None:
        rows = torch.cat([rows, contrast_features.to(device=features.device, dtype=compute_dtype)])
    if normalize:
        rows = F.normalize(rows, dim=1)
    return rows, batch, views


def _takes_tiled_path(chunk_size: int | str | None, n_contrast: int) -> bool:
    """An int always tiles, None never does, "auto" from :data:`AUTO_TILED_THRESHOLD` rows on."""
    return chunk_size is not None and (chunk_size != "auto" or n_contrast >= AUTO_TILED_THRESHOLD)


def _reduce(
    row_losses: Tensor, npos: Tensor, scale: float, reduction: str, check_inputs: bool
) -> Tensor:
    """Zeroes anchors without positives, scales, and reduces over the anchors with one."""
    valid = npos > 0
    n_valid = valid.sum()
    if check_inputs and int(n_valid) == 0:  # the only device sync, skipped with check_inputs=False
        raise ValueError(
            "no anchor has a positive: check labels/mask (does every class appear only once "
            "with a single view?)"
        )
    row_losses = torch.where(valid, row_losses, torch.zeros_like(row_losses)) * scale
    if reduction == "none":
        return row_losses
    if reduction == "sum":
        return row_losses.sum()
    return row_losses.sum() / n_valid.clamp_min(1)


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
