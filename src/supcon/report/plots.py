"""Every plot of the project (matplotlib, Agg backend), and the hooks that write them.

The lower layers never import matplotlib: training takes :func:`training_plots` as callbacks, and
the analyses take :func:`write_robustness_plots`, :func:`write_sweep_plot` and
:func:`write_gradients_plot` as their ``on_finish``. Each writes the PNGs under the names of
:mod:`supcon.runfiles`.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from supcon.config import Config  # noqa: E402
from supcon.eval.robustness import display_name  # noqa: E402
from supcon.report.text import printable  # noqa: E402
from supcon.runfiles import (GRADIENTS_PLOT, LOSS_PLOT, METRICS_CSV, ROBUSTNESS_HEATMAP,  # noqa: E402
                             ROBUSTNESS_SEVERITY, SWEEP_BOX, TSNE_PLOT)
from supcon.train.callbacks import RunEnd, TrainCallback  # noqa: E402

__all__ = ["read_metrics", "plot_training_curves", "plot_tsne", "plot_robustness_heatmap",
           "plot_accuracy_vs_severity", "plot_sweep_box", "plot_confusion_matrix", "plot_gradient_analysis",
           "training_plots", "write_robustness_plots", "write_sweep_plot", "write_gradients_plot"]


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """The per-epoch rows of ``run_dir/metrics.csv`` as floats (empty cells skipped)."""
    path = Path(run_dir) / METRICS_CSV
    if not path.is_file():
        return []
    rows = []
    with path.open() as handle:
        for row in csv.DictReader(handle):
            rows.append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows


def _curves(ax: Any, epochs: list[float], rows: list[dict[str, float]], keys: Sequence[str], ylabel: str) -> None:
    for key in keys:
        ax.plot(epochs, [r.get(key, np.nan) for r in rows], label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(alpha=0.3)


def plot_training_curves(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """loss.png: training loss per epoch, and every accuracy column on a second axis."""
    rows = read_metrics(run_dir)
    if not rows:
        return None
    out = Path(out) if out is not None else Path(run_dir) / LOSS_PLOT
    epochs = [r["epoch"] for r in rows]
    acc_keys = sorted({k for r in rows for k in r if k.endswith("acc")})
    fig, axes = plt.subplots(1, 2 if acc_keys else 1, figsize=(10 if acc_keys else 5, 3.6))
    axes = np.atleast_1d(axes)
    _curves(axes[0], epochs, rows, [k for k in ("loss", "contrastive_loss", "probe_loss") if k in rows[0]],
            "training loss")
    if acc_keys:
        _curves(axes[1], epochs, rows, acc_keys, "test accuracy (%)")
    fig.suptitle(printable(Path(run_dir).name))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_tsne(features: torch.Tensor, labels: torch.Tensor, out: str | Path, *,
              classes: Sequence[str] | None = None, seed: int = 0, title: str = "t-SNE") -> Path:
    """A 2-D t-SNE of (N, D) embeddings coloured by label, saved as PNG (N >= 2)."""
    from sklearn.manifold import TSNE

    x = torch.nn.functional.normalize(features.float(), dim=1).numpy()
    y = labels.numpy()
    if len(x) < 2:
        raise ValueError(f"a t-SNE needs at least 2 points, got features of shape {tuple(features.shape)}")
    perplexity = float(min(30, max(2, (len(x) - 1) // 3), len(x) - 1))  # sklearn: perplexity < N
    pts = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    cmap = plt.get_cmap("tab10" if y.max() < 10 else "tab20")
    for c in np.unique(y):
        sel = y == c
        name = printable(classes[c]) if classes is not None and c < len(classes) else str(c)
        ax.scatter(pts[sel, 0], pts[sel, 1], s=6, color=cmap(int(c) % cmap.N), label=name)
    if len(np.unique(y)) <= 20:
        ax.legend(markerscale=2.5, fontsize=7, loc="best", ncol=2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(printable(title), fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_robustness_heatmap(accuracy: Mapping[str, Mapping[str, Sequence[float]]], severities: Sequence[int],
                            out: str | Path, *, clean: Mapping[str, float] | None = None) -> Path:
    """Corruption x severity accuracy (%) heatmaps, one panel per model (clean column first).

    Args:
        accuracy: model -> {corruption: [accuracy % per severity]}.
        severities: the severities of the columns.
        clean: model -> clean accuracy (%), shown as a first column.
    """
    models = list(accuracy)
    corruptions = list(next(iter(accuracy.values())))
    cols = (["clean"] if clean else []) + [f"s{s}" for s in severities]
    width = 1.6 + 0.55 * len(cols)
    fig, axes = plt.subplots(1, len(models), figsize=(width * len(models) + 1.2, 1.2 + 0.33 * len(corruptions)),
                             squeeze=False)
    image = None
    for ax, model in zip(axes[0], models):
        rows = [([clean[model]] if clean else []) + list(accuracy[model][c]) for c in corruptions]
        grid = np.asarray(rows, dtype=float)
        image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(cols)), cols, fontsize=8)
        ax.set_yticks(range(len(corruptions)), corruptions if ax is axes[0][0] else [""] * len(corruptions),
                      fontsize=8)
        if grid.size <= 600:
            for (r, c), v in np.ndenumerate(grid):
                ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6.5,
                        color="black" if v > 60 else "white")
        ax.set_title(model, fontsize=9)
    fig.colorbar(image, ax=list(axes[0]), fraction=0.04, pad=0.02, label="accuracy (%)")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return Path(out)


def plot_accuracy_vs_severity(accuracy: Mapping[str, Mapping[str, Sequence[float]]], severities: Sequence[int],
                              out: str | Path, *, clean: Mapping[str, float] | None = None) -> Path:
    """Mean accuracy over corruptions against severity (0 = clean), one line per model, min-max band."""
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, (model, table) in enumerate(accuracy.items()):
        grid = np.asarray([list(v) for v in table.values()], dtype=float)  # (corruptions, severities)
        xs, mean, lo, hi = list(severities), grid.mean(0), grid.min(0), grid.max(0)
        if clean:
            xs = [0] + xs
            mean, lo, hi = (np.concatenate([[clean[model]], a]) for a in (mean, lo, hi))
        colour = plt.get_cmap("tab10")(i % 10)
        ax.plot(xs, mean, marker="o", color=colour, label=f"{model} (mean over {grid.shape[0]})")
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.15)
    ax.set_xticks(([0] if clean else []) + list(severities))
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy against corruption severity (band: min-max over corruptions)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_sweep_box(rows: Sequence[Mapping[str, Any]], out: str | Path,
                   title: str = "accuracy over the hyper-parameter grid") -> Path:
    """Box plot of the accuracy per method over the runs of a sweep, every run drawn as a dot."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    values = [[float(r["accuracy"]) for r in rows if r["method"] == m] for m in methods]
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(methods), 3.8))
    ax.boxplot(values, widths=0.5, showfliers=False)
    ax.set_xticks(range(1, len(methods) + 1), methods)
    rng = np.random.default_rng(0)
    for i, v in enumerate(values, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(v)), v, s=14, alpha=0.7, zorder=3)
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def plot_confusion_matrix(matrix: torch.Tensor, out: str | Path, *, classes: Sequence[str] | None = None,
                          title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix (colour) with counts (text, up to 20 classes)."""
    counts = matrix.double().numpy()
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = counts.shape[0]
    side = min(9.0, 2.2 + 0.38 * k)
    fig, ax = plt.subplots(figsize=(side + 0.8, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [printable(c) for c in classes] if classes is not None and len(classes) == k else [str(i) for i in range(k)]
    if k <= 30:
        ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 3 else 0, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
    if k <= 20:
        for (r, c), v in np.ndenumerate(counts):
            if v:
                ax.text(c, r, f"{int(v)}", ha="center", va="center", fontsize=6.5,
                        color="white" if rates[r, c] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(printable(title), fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def _gradient_panel(ax: Any, pairs: Mapping[str, torch.Tensor], analysis: Mapping[str, Any], variant: str,
                    kind: str, max_points: int, rng: np.random.Generator) -> None:
    """One panel of :func:`plot_gradient_analysis`: one loss, positives or negatives."""
    sel = pairs["positive"].numpy() if kind == "positives" else ~pairs["positive"].numpy()
    sim, proj = pairs["similarity"].numpy()[sel], pairs["projected"].numpy()[sel]
    if len(sim) > max_points:
        pick = rng.choice(len(sim), max_points, replace=False)
        sim, proj = sim[pick], proj[pick]
    keep = proj > 0
    colour = "tab:green" if kind == "positives" else "tab:red"
    ax.scatter(sim[keep], proj[keep], s=3, alpha=0.15, color=colour, rasterized=True)
    rows = [b for b in analysis[variant]["binned"] if b["kind"] == kind and b["pairs"]]
    mids = [b["mean_similarity"] for b in rows]
    ax.plot(mids, [b["mean_projected"] for b in rows], "-o", color="black", ms=3,
            label="binned mean, through normalisation")
    ax.plot(mids, [b["mean_magnitude"] for b in rows], "--", color="grey",
            label="binned mean, w.r.t. normalised z")
    if keep.any():
        ax.set_yscale("log")
    share = analysis[variant]["summary"].get(kind, {}).get("hard_half_share_projected")
    hard = "hard = low similarity" if kind == "positives" else "hard = high similarity"
    ax.set_title(f"L_{variant}, {kind} ({hard}); hard-half share "
                 f"{'-' if share is None else f'{share:.2f}'}", fontsize=8.5)
    ax.grid(alpha=0.3)


def plot_gradient_analysis(pairs: Mapping[str, Mapping[str, torch.Tensor]], analysis: Mapping[str, Any],
                           out: str | Path, *, max_points: int = 20000, seed: int = 0) -> Path:
    """Gradient-term magnitude against similarity: rows L_out / L_in, columns positives / negatives.

    Dots: the projected magnitude of each term (through the normalisation Jacobian, the paper's
    quantity); solid line: its binned mean; dashed line: the binned mean of the magnitude w.r.t.
    the normalised embedding (before the Jacobian).
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    rng = np.random.default_rng(seed)
    for r, variant in enumerate(("out", "in")):
        for c, kind in enumerate(("positives", "negatives")):
            _gradient_panel(axes[r, c], pairs[variant], analysis, variant, kind, max_points, rng)
    for ax in axes[1]:
        ax.set_xlabel("similarity z_i . z_j")
    for ax in axes[:, 0]:
        ax.set_ylabel("|gradient term|")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"per-term gradient magnitude on the anchor (t = {analysis.get('temperature')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


# ---------------------------------------------------------------------------------------------
# Hooks for training (callbacks) and the analyses (on_finish)
# ---------------------------------------------------------------------------------------------


def _plot_finished_run(end: RunEnd) -> None:
    """loss.png for every run; tsne.png of the test embeddings for runs that trained an encoder (none
    with ``tsne_points`` 0, or a test split of fewer than 2 images)."""
    plot_training_curves(end.run_dir)
    n = end.cfg.tsne_points
    if end.test_features is not None and min(n, len(end.test_features)) >= 2:
        plot_tsne(end.test_features[:n], end.test_labels[:n], end.run_dir / TSNE_PLOT, classes=end.classes,
                  seed=end.cfg.seed, title=f"{end.title} encoder, t-SNE of test embeddings")


def training_plots(cfg: Config) -> list[TrainCallback]:
    """The training callbacks that write a run's plots: none when ``cfg.plots`` is off."""
    return [_plot_finished_run] if cfg.plots else []


def write_robustness_plots(summary: Mapping[str, Any], out: Path) -> None:
    """``on_finish`` of :func:`supcon.eval.robustness.run_robustness`: the heatmap and the
    accuracy-against-severity plot of every model in ``summary``."""
    models = summary["models"]
    accs = {display_name(k, v): v["accuracy"] for k, v in models.items()}
    clean = {display_name(k, v): v["clean_accuracy"] for k, v in models.items()}
    plot_robustness_heatmap(accs, summary["severities"], out / ROBUSTNESS_HEATMAP, clean=clean)
    plot_accuracy_vs_severity(accs, summary["severities"], out / ROBUSTNESS_SEVERITY, clean=clean)


def write_sweep_plot(rows: Sequence[Mapping[str, Any]], out: Path) -> None:
    """``on_finish`` of :func:`supcon.eval.sweep.run_sweep`: the box plot of the accuracy spread."""
    plot_sweep_box(rows, out / SWEEP_BOX)


def write_gradients_plot(analysis: Mapping[str, Any], pairs: Mapping[str, Mapping[str, torch.Tensor]], out: Path,
                         seed: int, *, max_points: int = 20000) -> None:
    """``on_finish`` of :func:`supcon.eval.gradients.run_gradients`: magnitude against similarity,
    at most ``max_points`` dots per panel (a draw seeded by ``seed``)."""
    plot_gradient_analysis(pairs, analysis, out / GRADIENTS_PLOT, max_points=max_points, seed=seed)
