"""The peers that benchmarks/loss.py times next to this project's loss, written for the benchmark.

Each takes ``features`` (batch, views, dim), not yet normalised, and ``labels`` (batch,) integer
classes, and returns the scalar mean loss over every ``batch * views`` anchor, so that every
column of the table does the same job from the same input:

* :func:`supcontrast_style_loss`: the supervised loss (L_out, paper eq. 2) written the way the
  authors' PyTorch reference (SupContrast) and most research code write it: a label-equality
  mask tiled over the views, a "logits mask" for the diagonal, logits minus their detached row
  max, and every (N x N) intermediate kept for autograd.
* :func:`lightly_style_loss`: a two-view NT-Xent in the style of lightly's NTXentLoss: one
  (2B x 2B) similarity matrix, the diagonal masked out, and ``cross_entropy`` with the other
  view of each image as the target class. It ignores the labels (one positive per anchor), so
  it is the floor of what a softmax-over-similarities loss costs, not the same loss.
* :func:`pml_loss`: pytorch-metric-learning's ``SupConLoss`` (a benchmark-only dependency,
  ``pip install -e '.[bench]'``); :func:`pml_available` says whether it is installed.

Written from the papers' equations (Khosla et al. 2020, eq. 2; Chen et al. 2020, eq. 1), not
copied from those projects.
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["supcontrast_style_loss", "lightly_style_loss", "pml_loss", "pml_available", "PEERS"]


def supcontrast_style_loss(features: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """L_out with every (N x N) matrix materialised, as in the SupContrast reference code.

    Args:
        features: (batch, views, dim) embeddings (L2-normalised here).
        labels: (batch,) integer classes.
        temperature: softmax temperature.

    Returns:
        The scalar mean loss over all ``batch * views`` anchors (no ``t / base_t`` scale).
    """
    batch, views, _ = features.shape
    n = batch * views
    features = F.normalize(features, dim=2)
    stacked = torch.cat(torch.unbind(features, dim=1), dim=0)  # row v * batch + b
    same_class = torch.eq(labels[:, None], labels[None, :]).float().repeat(views, views)
    # The "logits mask": 1 everywhere but the diagonal (an anchor is not its own contrast row).
    logits_mask = torch.scatter(
        torch.ones_like(same_class), 1, torch.arange(n, device=features.device)[:, None], 0)
    positives = same_class * logits_mask
    logits = torch.div(torch.matmul(stacked, stacked.T), temperature)
    row_max, _ = torch.max(logits, dim=1, keepdim=True)
    logits = logits - row_max.detach()
    exp_logits = torch.exp(logits) * logits_mask
    log_prob = logits - torch.log(exp_logits.sum(1, keepdim=True))
    counts = positives.sum(1)
    counts = torch.where(counts < 1e-6, torch.ones_like(counts), counts)
    mean_log_prob_pos = (positives * log_prob).sum(1) / counts
    return -mean_log_prob_pos.mean()


def lightly_style_loss(features: Tensor, labels: Tensor | None = None,
                       temperature: float = 0.1) -> Tensor:
    """Two-view NT-Xent as cross-entropy over similarities, the other view as the target.

    Args:
        features: (batch, 2, dim) embeddings (L2-normalised here).
        labels: ignored (NT-Xent has one positive per anchor); kept for a common signature.
        temperature: softmax temperature.

    Returns:
        The scalar mean loss over the ``2 * batch`` anchors.
    """
    batch, views, _ = features.shape
    if views != 2:
        raise ValueError(f"lightly_style_loss needs 2 views, got features of shape {tuple(features.shape)}")
    z = F.normalize(torch.cat([features[:, 0], features[:, 1]]), dim=1)
    logits = z @ z.T / temperature
    n = 2 * batch
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))  # an anchor is not its own class
    targets = torch.arange(n, device=z.device).roll(batch)  # row i's positive: i + batch mod n
    return F.cross_entropy(logits, targets)


def pml_available() -> bool:
    """Whether pytorch-metric-learning is installed (``pip install -e '.[bench]'``)."""
    return importlib.util.find_spec("pytorch_metric_learning") is not None


def pml_loss(features: Tensor, labels: Tensor, temperature: float = 0.1) -> Tensor:
    """pytorch-metric-learning's SupConLoss on the view-major rows and their labels.

    Args:
        features: (batch, views, dim) embeddings (its cosine distance normalises them).
        labels: (batch,) integer classes.
        temperature: softmax temperature.

    Returns:
        The scalar mean loss over the anchors with a positive.
    """
    from pytorch_metric_learning.losses import SupConLoss

    batch, views, dim = features.shape
    rows = features.transpose(0, 1).reshape(batch * views, dim)
    return SupConLoss(temperature=temperature)(rows, labels.repeat(views))


#: Peer name -> loss function (features, labels) -> scalar.
PEERS = {"supcontrast": supcontrast_style_loss, "lightly": lightly_style_loss, "pml": pml_loss}
