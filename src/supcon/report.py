"""Plots of a run (loss and accuracy curves, t-SNE of embeddings) and, later, run reports."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["read_metrics", "plot_training_curves", "plot_tsne"]

log = logging.getLogger(__name__)


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The per-epoch rows of ``run_dir/metrics.csv`` as floats (empty cells skipped)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def plot_training_curves(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """loss.png: training loss per epoch, and every accuracy column on a second axis."""
    rows = read_metrics(run_dir)
    if not rows:
        return None
    out = Path(out) if out is not None else Path(run_dir) / "loss.png"
    epochs = [r["epoch"] for r in rows]
    acc_keys = sorted({k for r in rows for k in r if k.endswith("acc")})
    fig, axes = plt.subplots(1, 2 if acc_keys else 1, figsize=(10 if acc_keys else 5, 3.6))
    axes = np.atleast_1d(axes)
    for key in [k for k in ("loss", "contrastive_loss", "probe_loss") if k in rows[0]]:
        axes[0].plot(epochs, [r.get(key, np.nan) for r in rows], label=key)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("training loss")
    axes[0].legend()
    axes[0].grid(alpha=0.3)
    if acc_keys:
        for key in acc_keys:
            axes[1].plot(epochs, [r.get(key, np.nan) for r in rows], label=key)
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("test accuracy (%)")
        axes[1].legend()
        axes[1].grid(alpha=0.3)
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_tsne(features: torch.Tensor, labels: torch.Tensor, out: str | Path, *,
              classes: Sequence[str] | None = None, seed: int = 0, title: str = "t-SNE") -> Path:
    """A 2-D t-SNE of (N, D) embeddings coloured by label, saved as PNG."""
    from sklearn.manifold import TSNE

    x = torch.nn.functional.normalize(features.float(), dim=1).numpy()
    y = labels.numpy()
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    pts = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    cmap = plt.get_cmap("tab10" if y.max() < 10 else "tab20")
    for c in np.unique(y):
        sel = y == c
        name = classes[c] if classes is not None and c < len(classes) else str(c)
        ax.scatter(pts[sel, 0], pts[sel, 1], s=6, color=cmap(int(c) % cmap.N), label=name)
    if len(np.unique(y)) <= 20:
        ax.legend(markerscale=2.5, fontsize=7, loc="best", ncol=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)
