"""A slow, obviously-right reference for the supervised contrastive loss, for the tests only.

Written from the paper's equations (Khosla et al., NeurIPS 2020, arXiv 2004.11362, eq. 2 for
``L_out`` and eq. 3 for ``L_in``) and the option semantics documented in
:func:`supcon.supcon_loss`, with explicit Python loops over anchors and contrast rows, in float64.
Nothing here is vectorised on purpose: every positive, negative and denominator term is an
individual scalar so that the code reads like the formulas. It is built from differentiable torch
scalar ops, so autograd through it gives the reference gradient.

Notation: contrast rows are the ``B * V`` batch rows, view-major (row ``r = v * B + b`` is view
``v`` of sample ``b``), followed by the ``E`` extra rows of ``contrast_features``. For anchor row
``i`` and contrast row ``j != i``: ``s(i, j) = z_i . z_j / t``; ``w(i, j) >= 0`` the positive
weight; positives ``P(i) = {j: w > 0, not dropped by positives_cap}``; negatives
``N(i) = {j: w == 0}``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

POSITIVE = "positive"
NEGATIVE = "negative"
DROPPED = "dropped"


def _unit(row: Tensor) -> Tensor:
    """The row divided by its Euclidean norm."""
    return row / torch.sqrt(torch.dot(row, row))


def _share_a_class(a: Tensor, b: Tensor) -> bool:
    """Whether two multi-hot label vectors have at least one class in common."""
    return any(bool(x != 0) and bool(y != 0) for x, y in zip(a, b))


def reference_supcon_loss(
    features: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 0.1,
    base_temperature: float | None = None,
    variant: str = "out",
    contrast_mode: str = "all",
    positives_cap: int | None = None,
    denominator: str = "all",
    normalize: bool = True,
    contrast_features: Tensor | None = None,
    contrast_labels: Tensor | None = None,
    contrast_mask: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """The supervised contrastive loss, one anchor and one term at a time, in float64.

    Args:
        features: (batch, views, dim) or (n, dim) (then views = 1).
        labels: (batch,) integer classes or (batch, classes) multi-hot, or None.
        mask: (batch, batch) non-negative positive weights, or None.
        temperature: t in s(i, j) = z_i . z_j / t.
        base_temperature: if given, every anchor's loss is scaled by t / base_temperature.
        variant: "out" (eq. 2) or "in" (eq. 3).
        contrast_mode: "all" (every row is an anchor) or "one" (view-0 rows only).
        positives_cap: at most this many positive rows per anchor besides its own views.
        denominator: "all", "only_negatives" or "one_positive".
        normalize: L2-normalise every row first.
        contrast_features: (extra, dim) rows that join the contrast set but are never anchors.
        contrast_labels: labels of the extra rows, shaped like ``labels`` per row.
        contrast_mask: (batch, extra) positive weights of the extra rows.
        reduction: "mean" or "sum" over anchors with a positive, or "none": (anchors,).

    Returns:
        A float64 scalar, or a (anchors,) float64 vector for reduction "none".
    """
    features = features.to(torch.float64)
    if features.ndim == 2:
        batch, views = features.shape[0], 1
        batch_rows = [features[b] for b in range(batch)]
    else:
        batch, views = features.shape[0], features.shape[1]
        batch_rows = [features[b, v] for v in range(views) for b in range(batch)]
    extra_rows = [] if contrast_features is None else list(contrast_features.to(torch.float64))
    rows = batch_rows + extra_rows
    if normalize:
        rows = [_unit(row) for row in rows]
    n_batch_rows = batch * views

    def sample_of(j: int) -> int | None:
        """The batch sample of contrast row j, or None for an extra row."""
        return j % batch if j < n_batch_rows else None

    def weight(b_i: int, j: int) -> float:
        """w(i, j) for an anchor of sample b_i and contrast row j (before any capping)."""
        b_j = sample_of(j)
        if b_j is not None:
            if labels is None and mask is None:  # SimCLR: only the sample's own other views
                return 1.0 if b_j == b_i else 0.0
            if mask is not None:
                return float(mask[b_i, b_j])
            if labels.ndim == 1:
                return 1.0 if int(labels[b_i]) == int(labels[b_j]) else 0.0
            return 1.0 if _share_a_class(labels[b_i], labels[b_j]) else 0.0
        e = j - n_batch_rows
        if labels is None and mask is None:  # extra rows are all negatives for SimCLR
            return 0.0
        if mask is not None:
            return 0.0 if contrast_mask is None else float(contrast_mask[b_i, e])
        if labels.ndim == 1:
            return 1.0 if int(labels[b_i]) == int(contrast_labels[e]) else 0.0
        return 1.0 if _share_a_class(labels[b_i], contrast_labels[e]) else 0.0

    def status(b_i: int, j: int) -> str:
        """Positive, negative or dropped (by positives_cap) for contrast row j != the anchor row."""
        if weight(b_i, j) == 0.0:
            return NEGATIVE
        if positives_cap is None or sample_of(j) == b_i:  # own other views are always kept
            return POSITIVE
        kept_rows = 0
        # Walk the other batch samples in index order, then the extra rows in order.
        for b in range(batch):
            if b == b_i or weight(b_i, b) == 0.0:
                continue
            if kept_rows + views <= positives_cap:
                kept_rows += views
                if sample_of(j) == b:
                    return POSITIVE
            elif sample_of(j) == b:
                return DROPPED
        for e in range(len(extra_rows)):
            j_e = n_batch_rows + e
            if weight(b_i, j_e) == 0.0:
                continue
            if kept_rows + 1 <= positives_cap:
                kept_rows += 1
                if j == j_e:
                    return POSITIVE
            elif j == j_e:
                return DROPPED
        raise AssertionError("unreachable: every positive row is visited")

    # Both are pure functions of (anchor sample, contrast row): tabulate them once.
    weights = [[weight(b_i, j) for j in range(len(rows))] for b_i in range(batch)]
    statuses = [[status(b_i, j) for j in range(len(rows))] for b_i in range(batch)]

    anchors = range(n_batch_rows) if contrast_mode == "all" else range(batch)
    scale = 1.0 if base_temperature is None else temperature / base_temperature

    losses: list[Tensor | None] = []
    for i in anchors:
        b_i = sample_of(i)
        positives: list[tuple[float, Tensor]] = []  # (weight, s(i, p))
        negatives: list[Tensor] = []  # s(i, n)
        for j in range(len(rows)):
            if j == i:
                continue
            s_ij = torch.dot(rows[i], rows[j]) / temperature
            kind = statuses[b_i][j]
            if kind == POSITIVE:
                positives.append((weights[b_i][j], s_ij))
            elif kind == NEGATIVE:
                negatives.append(s_ij)
        if not positives:
            losses.append(None)
            continue
        total_weight = sum(w for w, _ in positives)

        sum_exp_negatives = torch.zeros((), dtype=torch.float64)
        for s_in in negatives:
            sum_exp_negatives = sum_exp_negatives + torch.exp(s_in)
        sum_exp_positives = torch.zeros((), dtype=torch.float64)
        for _, s_ip in positives:
            sum_exp_positives = sum_exp_positives + torch.exp(s_ip)

        def den(s_ip: Tensor) -> Tensor:
            if denominator == "all":
                return sum_exp_positives + sum_exp_negatives
            if denominator == "only_negatives":
                if not negatives:
                    raise ValueError("only_negatives is undefined for an anchor without negatives")
                return sum_exp_negatives
            if denominator == "one_positive":
                return torch.exp(s_ip) + sum_exp_negatives
            raise ValueError(f"unknown denominator {denominator!r}")

        if variant == "out":  # eq. 2: -1/|P| sum_p log(exp(s_ip) / DEN)
            loss = torch.zeros((), dtype=torch.float64)
            for w, s_ip in positives:
                loss = loss - (w / total_weight) * torch.log(torch.exp(s_ip) / den(s_ip))
        elif variant == "in":  # eq. 3: -log(1/|P| sum_p exp(s_ip) / DEN)
            inside = torch.zeros((), dtype=torch.float64)
            for w, s_ip in positives:
                inside = inside + (w / total_weight) * torch.exp(s_ip) / den(s_ip)
            loss = -torch.log(inside)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        losses.append(loss * scale)

    kept = [loss for loss in losses if loss is not None]
    if reduction == "none":
        zero = torch.zeros((), dtype=torch.float64)
        return torch.stack([zero if loss is None else loss for loss in losses])
    if not kept:
        raise ValueError("no anchor has a positive")
    total = torch.stack(kept).sum()
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / len(kept)
    raise ValueError(f"unknown reduction {reduction!r}")


def reference_nt_xent(view_a: Tensor, view_b: Tensor, temperature: float) -> Tensor:
    """SimCLR's NT-Xent written as a cross-entropy (Chen et al. 2020), for the closed-form test.

    Args:
        view_a, view_b: (batch, dim), two views of the same samples.

    Returns:
        The mean over all 2 * batch rows of the cross-entropy over the other 2 * batch - 1 rows
        with the other view of the same sample as the target.
    """
    z = torch.nn.functional.normalize(torch.cat([view_a, view_b]).to(torch.float64), dim=1)
    n = z.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(n, dtype=torch.bool), -math.inf)
    targets = (torch.arange(n) + n // 2) % n
    return torch.nn.functional.cross_entropy(logits, targets)
