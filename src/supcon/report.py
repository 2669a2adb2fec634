"""Plots (training curves, t-SNE, robustness, sweeps, gradients, confusion) and run reports.

:func:`write_report` gathers one or more run folders (single runs, a ``supcon run`` folder with its
``supcon/``, ``simclr/``, ``ce/`` runs and ``summary.json``, robustness, sweep and gradient outputs)
into ``report.md`` (images beside it in ``report_files/``) and ``report.html``, a single
self-contained file: inline CSS, images as base64 data URIs, no external assets or links.
"""

from __future__ import annotations

import argparse
import base64
import csv
import html
import json
import logging
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["read_metrics", "plot_training_curves", "plot_tsne", "plot_robustness_heatmap",
           "plot_accuracy_vs_severity", "plot_sweep_box", "confusion_matrix", "plot_confusion_matrix",
           "plot_gradient_analysis", "find_report_inputs", "write_report"]

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


# ---------------------------------------------------------------------------------------------
# Evaluation plots
# ---------------------------------------------------------------------------------------------


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


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(num_classes, num_classes)`` counts, rows the true class, columns the prediction."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions has shape {tuple(predictions.shape)}, labels {tuple(labels.shape)}")
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def plot_confusion_matrix(matrix: torch.Tensor, out: str | Path, *, classes: Sequence[str] | None = None,
                          title: str = "confusion matrix") -> Path:
    """Row-normalised confusion matrix (colour) with counts (text, up to 20 classes)."""
    counts = matrix.double().numpy()
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    k = counts.shape[0]
    side = min(9.0, 2.2 + 0.38 * k)
    fig, ax = plt.subplots(figsize=(side + 0.8, side))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = [str(c) for c in classes] if classes is not None and len(classes) == k else [str(i) for i in range(k)]
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
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


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
        p = pairs[variant]
        binned = analysis[variant]["binned"]
        for c, kind in enumerate(("positives", "negatives")):
            ax = axes[r, c]
            sel = p["positive"].numpy() if kind == "positives" else ~p["positive"].numpy()
            sim, proj = p["similarity"].numpy()[sel], p["projected"].numpy()[sel]
            if len(sim) > max_points:
                pick = rng.choice(len(sim), max_points, replace=False)
                sim, proj = sim[pick], proj[pick]
            keep = proj > 0
            colour = "tab:green" if kind == "positives" else "tab:red"
            ax.scatter(sim[keep], proj[keep], s=3, alpha=0.15, color=colour, rasterized=True)
            rows = [b for b in binned if b["kind"] == kind and b["pairs"]]
            mids = [b["mean_similarity"] for b in rows]
            ax.plot(mids, [b["mean_projected"] for b in rows], "-o", color="black", ms=3,
                    label="binned mean, through normalisation")
            ax.plot(mids, [b["mean_magnitude"] for b in rows], "--", color="grey",
                    label="binned mean, w.r.t. normalised z")
            if keep.any():
                ax.set_yscale("log")
            s = analysis[variant]["summary"].get(kind, {})
            share = s.get("hard_half_share_projected")
            hard = "hard = low similarity" if kind == "positives" else "hard = high similarity"
            ax.set_title(f"L_{variant}, {kind} ({hard}); hard-half share "
                         f"{'-' if share is None else f'{share:.2f}'}", fontsize=8.5)
            ax.grid(alpha=0.3)
            if r == 1:
                ax.set_xlabel("similarity z_i . z_j")
            if c == 0:
                ax.set_ylabel("|gradient term|")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle(f"per-term gradient magnitude on the anchor (t = {analysis.get('temperature')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


# ---------------------------------------------------------------------------------------------
# Reports: Markdown and self-contained HTML from run folders
# ---------------------------------------------------------------------------------------------

_HTML_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;
color:#1f2328;line-height:1.45;padding:0 16px}
h1{border-bottom:2px solid #d0d7de;padding-bottom:6px}h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;
margin-top:32px}h3{margin-top:22px}
table{border-collapse:collapse;margin:10px 0;font-size:13px}th,td{border:1px solid #d0d7de;padding:4px 8px;
text-align:left}th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfcfd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:10px 10px 10px 0;display:inline-block;vertical-align:top;max-width:calc(50% - 24px)}
figure.wide{max-width:100%}figure img{max-width:100%;border:1px solid #eaeef2}
figcaption{font-size:12px;color:#57606a}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}
details{margin:6px 0}summary{cursor:pointer;color:#0969da}p.note{color:#9a6700;font-size:13px}
"""


@dataclass
class ReportInputs:
    """What :func:`find_report_inputs` found: folders of each kind, and the folder names are relative to."""

    root: Path
    runs: list[Path] = field(default_factory=list)
    summaries: list[Path] = field(default_factory=list)
    robustness: list[Path] = field(default_factory=list)
    sweeps: list[Path] = field(default_factory=list)
    gradients: list[Path] = field(default_factory=list)

    def name(self, path: Path) -> str:
        rel = os.path.relpath(path, self.root)
        return "." if rel == "." else rel.replace(os.sep, "/")


def find_report_inputs(paths: Sequence[str | Path]) -> ReportInputs:
    """Walks the folders for runs (``config.yaml``), ``summary.json``, ``robustness.json``,
    ``sweep.csv`` (whose run folders are summarised by the sweep, not listed one by one) and
    ``gradients.json``.

    Raises:
        ConfigError: a path that is not a folder, or folders holding none of these.
    """
    from supcon.config import ConfigError

    if not paths:
        raise ConfigError("report: give at least one run folder")
    dirs = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise ConfigError(f"report: {p} is not a folder")
        dirs.append(p.resolve())
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    root = common.parent if len(dirs) == 1 or common in dirs else common
    found = ReportInputs(root=root)
    seen: set[Path] = set()
    for top in dirs:
        for current, subdirs, files in os.walk(top):
            here = Path(current)
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != "report_files")
            if here in seen:
                subdirs[:] = []
                continue
            seen.add(here)
            names = set(files)
            if "sweep.csv" in names:
                found.sweeps.append(here)
                subdirs[:] = []
                continue
            if "config.yaml" in names and ("metrics.json" in names or "metrics.csv" in names):
                found.runs.append(here)
            if "summary.json" in names:
                found.summaries.append(here)
            if "robustness.json" in names:
                found.robustness.append(here)
            if "gradients.json" in names:
                found.gradients.append(here)
    if not (found.runs or found.summaries or found.robustness or found.sweeps or found.gradients):
        raise ConfigError(
            f"report: no runs found in {', '.join(map(str, paths))} (looked for folders with config.yaml and "
            "metrics, summary.json, robustness.json, sweep.csv or gradients.json)")
    return found


class _Document:
    """A report as blocks, rendered to Markdown (images as files) and HTML (images inline)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.blocks: list[tuple[str, Any]] = []

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str, note: bool = False) -> None:
        self.blocks.append(("note" if note else "text", text))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.blocks.append(("table", (list(header), [[_cell(v) for v in row] for row in rows])))

    def images(self, items: Sequence[tuple[Path, str]]) -> None:
        items = [(p, c) for p, c in items if p is not None and Path(p).is_file()]
        if items:
            self.blocks.append(("images", items))

    def code(self, summary: str, text: str) -> None:
        self.blocks.append(("code", (summary, text)))

    def markdown(self, files_dir: Path) -> str:
        files_dir.mkdir(parents=True, exist_ok=True)
        used: set[str] = set()
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                out += ["#" * (value[0] + 1) + " " + value[1], ""]
            elif kind in ("text", "note"):
                out += [("> " if kind == "note" else "") + value, ""]
            elif kind == "table":
                header, rows = value
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "images":
                for path, caption in value:
                    name = _unique_name(caption, path, used)
                    shutil.copyfile(path, files_dir / name)
                    out += [f"![{caption}]({files_dir.name}/{name})", f"*{caption}*", ""]
            elif kind == "code":
                summary, text = value
                out += [f"<details><summary>{summary}</summary>", "", "```yaml", text.rstrip(), "```", "",
                        "</details>", ""]
        return "\n".join(out)

    def html(self) -> str:
        esc = html.escape
        out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
               f"<title>{esc(self.title)}</title><style>{_HTML_CSS}</style></head><body>",
               f"<h1>{esc(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level = min(value[0] + 1, 6)
                out.append(f"<h{level}>{esc(value[1])}</h{level}>")
            elif kind == "text":
                out.append(f"<p>{esc(value)}</p>")
            elif kind == "note":
                out.append(f"<p class=\"note\">{esc(value)}</p>")
            elif kind == "table":
                header, rows = value
                out.append("<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr></thead><tbody>")
                for row in rows:
                    out.append("<tr>" + "".join(
                        f"<td class=\"num\">{esc(c)}</td>" if _is_number(c) else f"<td>{esc(c)}</td>"
                        for c in row) + "</tr>")
                out.append("</tbody></table>")
            elif kind == "images":
                for path, caption in value:
                    raw = Path(path).read_bytes()
                    data = base64.b64encode(raw).decode("ascii")
                    wide = " class=\"wide\"" if _png_width(raw) > 800 else ""
                    out.append(f"<figure{wide}><img alt=\"{esc(caption)}\" src=\"data:image/png;base64,{data}\">"
                               f"<figcaption>{esc(caption)}</figcaption></figure>")
            elif kind == "code":
                summary, text = value
                out.append(f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>")
        out.append("</body></html>")
        return "\n".join(out)


def _png_width(data: bytes) -> int:
    """Pixel width from a PNG's IHDR chunk (0 if the bytes are not a PNG)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return 0
    return int.from_bytes(data[16:20], "big")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _maybe_number(text: Any) -> Any:
    """A CSV cell as float when it is a non-integer number (so tables round it), else unchanged."""
    if isinstance(text, str) and "." in text:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _unique_name(caption: str, path: Path, used: set[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9]+", "_", caption).strip("_").lower()[:60] or "figure"
    name, i = f"{stem}{Path(path).suffix}", 1
    while name in used:
        i += 1
        name = f"{stem}_{i}{Path(path).suffix}"
    used.add(name)
    return name


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("could not read %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class _Run:
    path: Path
    name: str
    config: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def kind(self) -> str:
        if "source_method" in self.metrics:
            return "finetune" if self.config.get("finetune") else "linear"
        if "test_acc" in self.metrics:
            return "ce"
        return "pretrain"

    @property
    def method(self) -> str:
        if self.kind == "ce":
            return "ce"
        if self.kind in ("linear", "finetune"):
            return str(self.metrics.get("source_method", "?"))
        return str(self.config.get("method", "?"))


def _load_run(path: Path, name: str) -> _Run:
    import yaml

    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        log.warning("could not read %s: %s", path / "config.yaml", exc)
        config = {}
    metrics = _read_json(path / "metrics.json") if (path / "metrics.json").is_file() else {}
    if not metrics:
        rows = read_metrics(path)
        metrics = dict(rows[-1]) if rows else {}
    return _Run(path, name, config if isinstance(config, dict) else {}, metrics)


def _run_row(run: _Run) -> list[Any]:
    c, m = run.config, run.metrics
    if run.kind in ("linear", "finetune"):
        epochs, lr, batch = c.get("linear_epochs"), c.get("linear_lr"), c.get("linear_batch_size")
    elif run.kind == "ce":
        epochs, lr, batch = c.get("ce_epochs") or c.get("epochs"), c.get("ce_lr") or c.get("lr"), c.get("batch_size")
    else:
        epochs, lr, batch = c.get("epochs"), c.get("lr"), c.get("batch_size")
    temperature = c.get("temperature") if run.method in ("supcon", "simclr") else None
    return [run.name, run.kind, run.method, c.get("dataset"), c.get("arch"), epochs, batch, lr, temperature,
            c.get("label_fraction") or 1.0, m.get("test_acc"), m.get("knn_acc"), m.get("online_probe_acc"),
            m.get("loss"), m.get("total_seconds")]


_RUN_HEADER = ["run", "kind", "method", "dataset", "arch", "epochs", "batch", "lr", "temperature",
               "label fraction", "test acc (%)", "kNN acc (%)", "online probe (%)", "final loss", "train time (s)"]


def _run_confusion(run: _Run, files: Path, cache: dict[tuple[Any, ...], Any]) -> tuple[Path | None, str | None]:
    """confusion.png for a run with test_predictions.pt (labels from its config's test split)."""
    pred_path = run.path / "test_predictions.pt"
    if not pred_path.is_file():
        return None, None
    from supcon.data import DatasetError, load_dataset

    c = run.config
    key = (c.get("dataset"), c.get("image_size"), c.get("seed", 0), c.get("test_fraction", 0.2))
    try:
        if key not in cache:
            cache[key] = load_dataset(key[0], "test", image_size=key[1], download=False, seed=key[2],
                                      test_fraction=key[3])
        test = cache[key]
        predictions = torch.load(pred_path, map_location="cpu", weights_only=True)
    except (DatasetError, OSError, RuntimeError, ValueError, TypeError) as exc:
        return None, f"no confusion matrix for {run.name}: {exc}"
    if not isinstance(predictions, torch.Tensor) or predictions.shape != test.labels.shape:
        return None, f"no confusion matrix for {run.name}: test_predictions.pt does not match the test split"
    matrix = confusion_matrix(predictions, test.labels, test.num_classes)
    out = files / f"confusion_{re.sub(r'[^A-Za-z0-9]+', '_', run.name).strip('_') or 'run'}.png"
    acc = 100.0 * float(matrix.diag().sum()) / max(1, int(matrix.sum()))
    plot_confusion_matrix(matrix, out, classes=test.classes, title=f"{run.name}: test confusion ({acc:.2f}% top-1)")
    return out, None


def write_report(paths: Sequence[str | Path], out: str | Path, *, title: str = "supcon report") -> tuple[Path, Path]:
    """Writes ``out/report.md`` (+ ``out/report_files/``) and the self-contained ``out/report.html``.

    Sections: the comparison table of every run (from ``metrics.json``) and of ``supcon run``
    summaries (``summary.json``); per run its config, loss/accuracy curves (``loss.png``), t-SNE
    (``tsne.png``) and, for runs with ``test_predictions.pt`` (linear probes, CE), a confusion matrix
    computed on the test split named by its config; robustness (``robustness.json`` and its plots),
    sweeps (``sweep.csv``/``sweep.json`` and the box plot) and gradient analyses when present.

    Returns:
        (markdown path, html path).

    Raises:
        ConfigError: no folder, or nothing to report in them.
    """
    inputs = find_report_inputs(paths)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = out / ".report_plots"
    work.mkdir(exist_ok=True)
    doc = _Document(title)
    doc.text(f"Folders: {', '.join(str(Path(p)) for p in paths)}. Accuracies are top-1 on each run's test split.")
    runs = [_load_run(p, inputs.name(p)) for p in inputs.runs]

    for folder in inputs.summaries:
        summary = _read_json(folder / "summary.json")
        if not summary:
            continue
        doc.heading(1, f"Method comparison: {inputs.name(folder)}")
        doc.table(["method", "linear-probe top-1 (%)", "kNN top-1 (%)", "time (s)"],
                  [[m, r.get("linear_acc"), r.get("knn_acc"), r.get("seconds")] for m, r in summary.items()
                   if isinstance(r, dict)])

    if runs:
        doc.heading(1, "Runs")
        doc.table(_RUN_HEADER, [_run_row(r) for r in runs])
        cache: dict[tuple[Any, ...], Any] = {}
        for run in runs:
            doc.heading(2, f"{run.name} ({run.kind}, {run.method})")
            confusion, note = _run_confusion(run, work, cache)
            if note:
                doc.text(note, note=True)
            doc.images([(run.path / "loss.png", f"{run.name}: training loss and accuracy"),
                        (run.path / "tsne.png", f"{run.name}: t-SNE of test embeddings"),
                        (confusion, f"{run.name}: confusion matrix")])
            import yaml

            doc.code(f"config of {run.name}", yaml.safe_dump(run.config, sort_keys=False))

    for folder in inputs.robustness:
        from supcon.evaluate import robustness_rows

        summary = _read_json(folder / "robustness.json")
        if not summary.get("models"):
            continue
        doc.heading(1, f"Robustness: {inputs.name(folder)}")
        doc.text(f"Test split of {summary.get('dataset')} ({summary.get('test_images')} images), corruptions from "
                 f"{summary.get('source')}: {', '.join(summary.get('corruptions', []))}; severities "
                 f"{summary.get('severities')}. mCE and relative mCE over {len(summary.get('mce_corruptions', []))} "
                 f"benchmark corruptions, baseline = 100"
                 f"{'' if summary.get('mce_complete') else ' (not the full 15 corruptions x 5 severities)'}.")
        doc.table(*robustness_rows(summary))
        models = summary["models"]
        header = ["corruption"] + [f"{k} acc (%) s{s}" for k in models for s in summary.get("severities", [])]
        rows = []
        for c in summary.get("corruptions", []):
            rows.append([c] + [v for k in models for v in models[k]["accuracy"].get(c, [])])
        if summary.get("ce"):
            header += ["CE (%)", "relative CE (%)"]
            for row, c in zip(rows, summary.get("corruptions", [])):
                row += [summary["ce"].get(c), (summary.get("relative_ce") or {}).get(c)]
        doc.table(header, rows)
        for note in summary.get("notes", []):
            doc.text(note, note=True)
        doc.images([(folder / "robustness_heatmap.png", f"{inputs.name(folder)}: accuracy per corruption and severity"),
                    (folder / "robustness_severity.png", f"{inputs.name(folder)}: accuracy against severity")])

    for folder in inputs.sweeps:
        doc.heading(1, f"Sweep: {inputs.name(folder)}")
        with (folder / "sweep.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        data = _read_json(folder / "sweep.json") if (folder / "sweep.json").is_file() else {}
        if data.get("grid"):
            doc.text("Grid: " + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in data["grid"].items())
                     + f". Epochs per run: {data.get('epochs')}.")
        if rows:
            from supcon.evaluate import sweep_spread

            spread = sweep_spread([r for r in rows if r.get("accuracy") not in (None, "")])
            doc.table(["method", "runs", "mean (%)", "std", "min", "median", "max"],
                      [[m, s["runs"], s["mean"], s["std"], s["min"], s["median"], s["max"]] for m, s in spread.items()])
            keys = [k for k in rows[0] if k not in ("run_dir",)]
            doc.table(keys, [[_maybe_number(r[k]) for k in keys] for r in rows])
        doc.images([(folder / "sweep_box.png", f"{inputs.name(folder)}: accuracy spread per method")])

    for folder in inputs.gradients:
        from supcon.evaluate import gradients_rows

        analysis = _read_json(folder / "gradients.json")
        if "out" not in analysis:
            continue
        doc.heading(1, f"Gradient analysis: {inputs.name(folder)}")
        doc.text(f"{analysis.get('images')} test images x 2 views of {analysis.get('dataset')}, t = "
                 f"{analysis.get('temperature')}, encoder + head of {analysis.get('pretrain_checkpoint')}. "
                 "Hard positives: below-median similarity; hard negatives: above-median. Magnitudes are "
                 "taken through the normalisation Jacobian (the paper's supplementary analysis).")
        doc.table(*gradients_rows(analysis))
        doc.images([(folder / "gradients.png", f"{inputs.name(folder)}: gradient terms against similarity")])

    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(doc.markdown(out / "report_files"))
    html_path.write_text(doc.html())
    shutil.rmtree(work, ignore_errors=True)
    return md_path, html_path


def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders: single runs, `supcon run` folders, robustness / sweep / gradients outputs")
    p.add_argument("--out", type=Path, default=Path("runs/report"), help="output folder (default: runs/report)")
    p.add_argument("--title", default="supcon report", help="report title")


def _cmd_report(args: argparse.Namespace) -> int:
    md_path, html_path = write_report(args.run_dirs, args.out, title=args.title)
    print(f"report: {md_path} and {html_path} (self-contained)")
    return 0


def _register() -> None:
    from supcon import cli

    cli.COMMANDS["report"] = (_add_report_arguments, _cmd_report,
                              "Markdown + self-contained HTML report of run folders")


_register()
