"""Which contrast rows are positives (and negatives) of which anchors: :class:`PositiveSpec`.

The rows of the loss are view-major (row ``v * batch + b`` is view ``v`` of sample ``b``), then
the extra contrast rows. Integer labels without a cap (and SimCLR) need no table at all: a row's
group is its label (or its sample), and the positives are the rows of the anchor's group. Every
other source of positives (multi-hot labels, a mask, a positives cap) becomes a sample-level
table of positive weights, built here once per call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PositiveSpec", "build_positive_spec"]


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


def _build_table(
    labels: Tensor | None, mask: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, batch: int, extra: int, device: torch.device,
) -> Tensor:
    """The (batch, batch + extra) float64 table of positive weights at sample level."""
    if mask is not None:
        table = mask.to(device=device, dtype=torch.float64)
        if extra:
            side = (
                torch.zeros(batch, extra, dtype=torch.float64, device=device)
                if contrast_mask is None
                else contrast_mask.to(device=device, dtype=torch.float64)
            )
            table = torch.cat([table, side], dim=1)
        return table
    if labels is not None and labels.ndim == 2:  # multi-hot
        all_labels = labels if contrast_labels is None else torch.cat([labels, contrast_labels])
        shared = labels.to(torch.float64) @ all_labels.to(device=device, dtype=torch.float64).T
        return (shared > 0).to(torch.float64)
    if labels is not None:
        all_labels = labels if contrast_labels is None else torch.cat([labels, contrast_labels])
        return (labels[:, None] == all_labels[None, :]).to(torch.float64)
    table = torch.zeros(batch, batch + extra, dtype=torch.float64, device=device)
    table[:, :batch] = torch.eye(batch, dtype=torch.float64, device=device)
    return table


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


def _sample_ids(batch: int, views: int, extra: int, device: torch.device) -> Tensor:
    """(batch * views + extra,) each batch row's sample (row ``v * batch + b`` is sample b),
    then a sample of its own per extra row."""
    ids = torch.arange(batch, device=device).repeat(views)
    if extra:
        ids = torch.cat([ids, batch + torch.arange(extra, device=device)])
    return ids


def build_positive_spec(
    labels: Tensor | None, mask: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, *, batch: int, views: int, extra: int, num_anchors: int,
    positives_cap: int | None, dtype: torch.dtype, device: torch.device,
) -> PositiveSpec:
    """The positives of the first ``num_anchors`` of ``batch * views + extra`` rows.

    Args:
        labels, mask, contrast_labels, contrast_mask: as :func:`supcon.losses.supcon_loss`
            takes them (already validated).
        batch, views: the layout of the batch rows (view-major).
        extra: how many extra contrast rows follow the batch rows.
        num_anchors: the anchors are rows ``0 .. num_anchors - 1``.
        positives_cap: the official TF code's cap on positive rows per anchor, or None.
        dtype: the dtype of the table (the loss's compute dtype).
        device: where the spec's tensors live.
    """
    anchor_index = torch.arange(num_anchors, device=device)
    if labels is not None:
        labels = labels.to(device)
        if contrast_labels is not None:
            contrast_labels = contrast_labels.to(device)
    if positives_cap is None and mask is None and (labels is None or labels.ndim == 1):
        # Equality rule on groups: no table at all (what the tiled path wants at large N).
        if labels is None:
            groups = _sample_ids(batch, views, extra, device)
        else:
            groups = labels.long().repeat(views)  # row v * batch + b has label b
            if extra:
                groups = torch.cat([groups, contrast_labels.long()])
        return PositiveSpec(anchor_index, groups[:num_anchors], groups)
    table = _build_table(labels, mask, contrast_labels, contrast_mask, batch, extra, device)
    negatives = table == 0
    if positives_cap is not None:
        table = _cap_table(table, views, positives_cap)
    samples = _sample_ids(batch, views, extra, device)
    return PositiveSpec(
        anchor_index, samples[:num_anchors], samples,
        table.to(dtype), negatives if positives_cap is not None else None,
    )
