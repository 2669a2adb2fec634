"""The histograms of ``supcon ood``: one PNG per score, written for a result built by hand."""

from __future__ import annotations

import numpy as np
from PIL import Image

from supcon.report.ood_plots import ood_plot_name, write_ood_plots
from supcon.use.ood import OODResult


def test_one_png_per_score(tmp_path):
    rng = np.random.default_rng(0)
    metrics = {"auroc": 0.9, "aupr_in": 0.8, "aupr_out": 0.95, "fpr95": 0.3}
    summary = {"scores": ["knn", "msp"], "in_dataset": "digits", "ood_dataset": "folder:/x\udcff",
               "method": "ce", "label": "ce", "metrics": {"knn": metrics, "msp": metrics}}
    result = OODResult(summary, {"knn": rng.normal(size=50), "msp": np.ones(40)},
                       {"knn": rng.normal(size=30) - 2, "msp": np.ones(20)})  # msp: one value on both sides
    paths = write_ood_plots(result, tmp_path / "plots")
    assert paths == [tmp_path / "plots" / ood_plot_name(n) for n in ("knn", "msp")]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 100
