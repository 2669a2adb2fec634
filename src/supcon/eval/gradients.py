"""The gradients of L_out and L_in, term by term (the SupCon paper's section 3.2, supplementary section 7).

:func:`gradient_coefficients` decomposes the gradient of ``L_out`` and ``L_in`` w.r.t. the anchor's
normalised embedding into one term per positive and per negative; :func:`run_gradients` measures
their magnitude against the similarity on a trained encoder (hard positives and hard negatives
should dominate).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from supcon.augment import Normalize, build_augmentation, make_views
from supcon.checkpoint import checkpoint_config, load_supcon_model
from supcon.config import ConfigError
from supcon.data import load_test_split
from supcon.devices import resolve_device
from supcon.runfiles import GRADIENTS_CSV, GRADIENTS_JSON, write_csv_atomic, write_text_atomic

__all__ = ["gradient_coefficients", "anchor_gradients", "loss_gradients", "gradient_pairs", "analyze_gradients",
           "run_gradients", "gradients_rows", "GradientsFinish"]

#: Called by :func:`run_gradients` once its files are written: ``(analysis, pairs, out folder, seed)``,
#: ``pairs`` holding :func:`gradient_pairs` (float32) of each variant, ``{"out": {...}, "in": {...}}``.
GradientsFinish = Callable[[Mapping[str, Any], Mapping[str, Mapping[str, Tensor]], Path, int], None]

VARIANTS = ("out", "in")


def gradient_coefficients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> Tensor:
    """Per-pair coefficients of the anchor gradient of L_out / L_in (paper eq. 2, 3; supp. sec. 7).

    For anchor ``i`` with positives ``P(i)`` (same label, ``j != i``) and negatives ``N(i)``,
    writing ``P_ij = exp(z_i.z_j/t) / sum_{a != i} exp(z_i.z_a/t)``::

        dL_i/dz_i = (1/t) [ sum_{p in P(i)} z_p (P_ip - X_ip) + sum_{n in N(i)} z_n P_in ]

    with ``X_ip = 1/|P(i)|`` for L_out and ``X_ip = exp(z_i.z_p/t) / sum_{p' in P(i)} exp(z_i.z_p'/t)``
    for L_in. This returns ``C[i, j] = P_ij - X_ij`` (``X`` is 0 on negatives), so that
    ``dL_i/dz_i = (1/t) C[i] @ z`` and, as ``z_j`` enters ``L_i`` only through ``z_i.z_j``,
    ``dL_i/dz_j = (1/t) C[i, j] z_i`` for ``j != i``. Rows of anchors without positives are 0 (the
    loss leaves them out).

    Args:
        z: ``(n, d)`` embeddings, already L2-normalised (the gradient is w.r.t. these).
        labels: ``(n,)`` integer class of each row.
        temperature: ``t > 0``.
        variant: ``"out"`` or ``"in"``.

    Returns:
        ``(n, n)`` coefficients, zero on the diagonal.
    """
    if z.ndim != 2:
        raise ValueError(f"z must be (n, d), got shape {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(f"labels has shape {tuple(labels.shape)}, expected ({z.shape[0]},) like z's rows")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be 'out' or 'in', got {variant!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    sim = (z @ z.T) / temperature
    probs = torch.softmax(sim.masked_fill(eye, -math.inf), dim=1)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    has_pos = positive.any(1, keepdim=True)
    if variant == "out":
        x = positive.to(z.dtype) / positive.sum(1, keepdim=True).clamp_min(1).to(z.dtype)
    else:
        x = torch.softmax(sim.masked_fill(~positive, -math.inf), dim=1)
        x = torch.where(positive, x, torch.zeros_like(x))  # rows without positives give NaN
    coef = probs - x
    return torch.where(has_pos & ~eye, coef, torch.zeros_like(coef))


def anchor_gradients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> Tensor:
    """``dL_i/dz_i`` for every anchor ``i`` (only its own loss term): ``(n, d)``."""
    return gradient_coefficients(z, labels, temperature, variant) @ z / temperature


def loss_gradients(z: Tensor, labels: Tensor, temperature: float, variant: str = "out",
                   reduction: str = "mean") -> Tensor:
    """Gradient of the whole loss w.r.t. every normalised embedding, from the decomposition.

    ``d(sum_i L_i)/dz_k = (1/t) [ sum_j C[k, j] z_j + sum_i C[i, k] z_i ]``: row ``k`` anchors its
    own term and appears as a positive or negative in the others'. ``reduction="mean"`` divides by
    the number of anchors with a positive, as :func:`supcon.losses.supcon_loss` does.
    """
    coef = gradient_coefficients(z, labels, temperature, variant)
    grad = (coef @ z + coef.T @ z) / temperature
    if reduction == "mean":
        same = labels[:, None] == labels[None, :]
        anchors_with_positive = (same.sum(1) > 1).sum().clamp_min(1)
        grad = grad / anchors_with_positive
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return grad


def gradient_pairs(z: Tensor, labels: Tensor, temperature: float, variant: str = "out") -> dict[str, Tensor]:
    """Every (anchor, other) term of the anchor gradients, flattened.

    Returns:
        ``similarity`` (cosine ``z_i.z_j``), ``coefficient`` (``C[i, j]``), ``magnitude`` (the term's
        norm w.r.t. ``z_i``: ``|C[i, j]| / t``), ``projected`` (its norm after the normalisation
        Jacobian ``(I - z_i z_i^T)``, per unit ``||w_i||``: ``|C[i, j]| sqrt(1 - s^2) / t``, the
        quantity of the paper's supplementary eq. 16-21), ``positive`` (bool) and ``anchor`` (index),
        for all ``j != i`` of anchors that have a positive.
    """
    coef = gradient_coefficients(z, labels, temperature, variant)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    positive = (labels[:, None] == labels[None, :]) & ~eye
    keep = ~eye & positive.any(1, keepdim=True)
    sim = (z @ z.T).clamp(-1, 1)
    anchors = torch.arange(n, device=z.device)[:, None].expand(n, n)
    magnitude = coef.abs() / temperature
    return {
        "similarity": sim[keep], "coefficient": coef[keep], "magnitude": magnitude[keep],
        "projected": magnitude[keep] * torch.sqrt((1 - sim[keep] ** 2).clamp_min(0)),
        "positive": positive[keep], "anchor": anchors[keep],
    }


def _rank(x: Tensor) -> Tensor:
    order = torch.argsort(x)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype, device=x.device)
    return ranks


def _spearman(x: Tensor, y: Tensor) -> float | None:
    if len(x) < 3:
        return None
    rx, ry = _rank(x.double()), _rank(y.double())
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = float(rx.norm() * ry.norm())
    return float((rx * ry).sum()) / den if den > 0 else None


def _kind_summary(kind: str, sim: Tensor, proj: Tensor, mag: Tensor) -> dict[str, Any]:
    """Means, Spearman correlations and the hard half's share for one kind of term (non-empty)."""
    median = sim.median()
    hard = sim < median if kind == "positives" else sim > median
    total = float(proj.sum())
    return {
        "pairs": int(len(sim)),
        "mean_similarity": float(sim.mean()),
        "mean_projected": float(proj.mean()),
        "mean_magnitude": float(mag.mean()),
        "spearman_similarity_vs_projected": _spearman(sim, proj),
        "spearman_similarity_vs_magnitude": _spearman(sim, mag),
        "hard_half_share_projected": float(proj[hard].sum()) / total if total > 0 else None,
        "hard_half_mean_projected": float(proj[hard].mean()) if hard.any() else None,
        "easy_half_mean_projected": float(proj[~hard].mean()) if (~hard).any() else None,
    }


def _kind_bins(variant: str, kind: str, sim: Tensor, proj: Tensor, mag: Tensor, bins: int) -> list[dict[str, Any]]:
    """Means over ``bins`` equal-count similarity bins (a trained encoder's similarities crowd into a
    narrow range, so equal-width bins would leave most empty)."""
    edges = torch.quantile(sim, torch.linspace(0, 1, bins + 1, dtype=sim.dtype))
    index = torch.bucketize(sim, edges[1:-1], right=True).clamp_max(bins - 1)
    rows = []
    for b in range(bins):
        in_bin = index == b
        count = int(in_bin.sum())
        rows.append({
            "variant": variant, "kind": kind, "bin_low": float(edges[b]), "bin_high": float(edges[b + 1]),
            "pairs": count, "mean_similarity": float(sim[in_bin].mean()) if count else None,
            "mean_magnitude": float(mag[in_bin].mean()) if count else None,
            "mean_projected": float(proj[in_bin].mean()) if count else None,
        })
    return rows


def analyze_gradients(z: Tensor, labels: Tensor, temperature: float, *, bins: int = 10) -> dict[str, Any]:
    """Magnitude of the per-positive and per-negative gradient terms against similarity.

    For L_out and L_in on the same embeddings: means over ``bins`` similarity bins of equal counts
    (per kind), and per kind the Spearman correlation of the (projected) magnitude with the
    similarity, the mean magnitude of the hard and the easy half (hard positives: below the median
    similarity; hard negatives: above it) and the hard half's share of the total magnitude.

    Returns:
        ``{"out": {...}, "in": {...}, "temperature", "anchors", "bins"}``, each variant holding
        ``"positives"`` and ``"negatives"`` summaries and ``"binned"`` rows.
    """
    z = z.double()
    result: dict[str, Any] = {"temperature": temperature, "anchors": int(z.shape[0]), "bins": bins}
    for variant in VARIANTS:
        pairs = gradient_pairs(z, labels, temperature, variant)
        summary: dict[str, Any] = {}
        binned: list[dict[str, Any]] = []
        for kind, sel in (("positives", pairs["positive"]), ("negatives", ~pairs["positive"])):
            sim, proj, mag = pairs["similarity"][sel], pairs["projected"][sel], pairs["magnitude"][sel]
            if len(sim) == 0:
                summary[kind] = {"pairs": 0}
                continue
            summary[kind] = _kind_summary(kind, sim, proj, mag)
            binned += _kind_bins(variant, kind, sim, proj, mag, bins)
        result[variant] = {"summary": summary, "binned": binned}
    return result


def _embedded_views(model: torch.nn.Module, state: Mapping[str, Any], batch: int, seed: int,
                    device: torch.device) -> tuple[Tensor, Tensor, int]:
    """``batch`` seeded test images, two augmented views each, through encoder + head.

    Returns:
        ``(z, row_labels, images)``: ``(2n, feat_dim)`` float64 embeddings in view-major order (as
        :func:`supcon.losses.supcon_loss` flattens ``(batch, views, dim)``), their labels and ``n``.
    """
    cfg = checkpoint_config(state)
    test = load_test_split(cfg)
    n = min(batch, test.images.shape[0])
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(test.images.shape[0], generator=gen)[:n]
    images, labels = test.images[idx], test.labels[idx]
    augment = build_augmentation(cfg.augment, test.image_size, test.channels, crop_scale=(cfg.crop_min, 1.0),
                                 blur=cfg.blur, flip=cfg.flip).to(device)
    norm = state["normalization"]
    normalize = Normalize(norm["mean"], norm["std"]).to(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        views = make_views(augment, images.to(device), 2)  # (n, 2, C, S, S)
        flat = views.transpose(0, 1).flatten(0, 1)
        z = model(normalize(flat)).double().cpu()
    return z, labels.repeat(2), int(n)


def run_gradients(checkpoint: str | Path, out: str | Path, *, batch: int = 256, seed: int = 0,
                  device: str = "auto", bins: int = 10,
                  on_finish: GradientsFinish | None = None) -> dict[str, Any]:
    """The gradient analysis on a trained encoder + head; writes ``out/``.

    Takes ``batch`` test images (a seeded random draw), makes two views with the checkpoint's
    augmentation config, embeds them with the encoder and projection head, and decomposes the
    gradients of L_out and L_in (at the checkpoint's temperature) into per-positive and
    per-negative terms (:func:`analyze_gradients`). Writes ``gradients.json`` (summaries and binned
    means) and ``gradients.csv`` (the binned means), then calls ``on_finish(analysis, pairs, out,
    seed)``, e.g. :func:`supcon.report.plots.write_gradients_plot` for ``gradients.png`` (None: no plot).

    Raises:
        ConfigError: ``batch`` < 2 or ``bins`` < 1.
        CheckpointError: not a pretrain (or linear-on-pretrain) checkpoint.
    """
    if batch < 2:
        raise ConfigError(f"--batch must be >= 2, got {batch}")
    if bins < 1:
        raise ConfigError(f"--bins must be >= 1, got {bins}")
    dev = resolve_device(device)
    model, state = load_supcon_model(checkpoint)
    cfg = checkpoint_config(state)
    z, row_labels, n = _embedded_views(model.to(dev), state, batch, seed, dev)
    analysis = analyze_gradients(z, row_labels, cfg.temperature, bins=bins)
    analysis.update({"checkpoint": str(checkpoint), "pretrain_checkpoint": state["path"],
                     "method": state.get("method"), "dataset": cfg.dataset, "images": n, "views": 2,
                     "trained_variant": cfg.variant})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / GRADIENTS_JSON, json.dumps(analysis, indent=2))
    write_csv_atomic(out / GRADIENTS_CSV, analysis["out"]["binned"] + analysis["in"]["binned"])
    if on_finish is not None:
        pairs = {v: {k: t.float() if t.is_floating_point() else t
                     for k, t in gradient_pairs(z, row_labels, cfg.temperature, v).items()}
                 for v in VARIANTS}
        on_finish(analysis, pairs, out, seed)
    return analysis


def gradients_rows(analysis: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of :func:`analyze_gradients`' summaries: one row per loss and kind."""
    header = ["loss", "kind", "pairs", "mean similarity", "mean projected norm", "hard-half mean",
              "easy-half mean", "hard-half share", "Spearman(similarity, norm)"]
    rows = []
    for variant in VARIANTS:
        for kind in ("positives", "negatives"):
            s = analysis[variant]["summary"].get(kind, {})
            if not s.get("pairs"):
                continue
            rows.append([f"L_{variant}", kind, s["pairs"], s["mean_similarity"], s["mean_projected"],
                         s["hard_half_mean_projected"], s["easy_half_mean_projected"],
                         s["hard_half_share_projected"], s["spearman_similarity_vs_projected"]])
    return header, rows
