"""Histograms of ``supcon ood``'s scores: in-distribution test images against the OOD images.

Kept apart from :mod:`supcon.report.plots` (and matplotlib imported inside the function) so ``supcon ood``
loads matplotlib only when it draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from supcon.report.text import printable
from supcon.use.ood import OODResult

__all__ = ["ood_plot_name", "write_ood_plots"]


def ood_plot_name(score: str) -> str:
    """``ood_<score>.png``: the file of one score's histogram."""
    return f"ood_{score}.png"


def write_ood_plots(result: OODResult, out: str | Path) -> list[Path]:
    """One PNG per score in the folder ``out`` (:func:`ood_plot_name`): density histograms of the in-distribution
    test scores and the OOD scores on shared bins, AUROC and FPR at 95 % TPR in the title. Returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.summary
    paths = []
    for name in summary["scores"]:
        inside, outside = result.in_scores[name], result.ood_scores[name]
        low, high = float(min(inside.min(), outside.min())), float(max(inside.max(), outside.max()))
        bins = np.linspace(low, high if high > low else low + 1, 51)
        fig, ax = plt.subplots(figsize=(5, 3.4))
        ax.hist(inside, bins=bins, density=True, alpha=0.55, label=printable(f"in: {summary['in_dataset']}"))
        ax.hist(outside, bins=bins, density=True, alpha=0.55, label=printable(f"OOD: {summary['ood_dataset']}"))
        metrics = summary["metrics"][name]
        ax.set_title(printable(f"{summary.get('label', summary['method'])}: {name}  AUROC {100 * metrics['auroc']:.2f}, "
                               f"FPR@95 {100 * metrics['fpr95']:.2f}"), fontsize=9)
        ax.set_xlabel(f"{name} score (higher = more in-distribution)")
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / ood_plot_name(name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
