"""The plots (supcon.report.plots): PNGs from the plot helpers, the training callbacks and the
analyses' on_finish writers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from supcon import report
from supcon.config import config_from_dict
from supcon.eval.gradients import analyze_gradients, gradient_pairs
from supcon.report.plots import (training_plots, write_gradients_plot, write_robustness_plots,
                                 write_sweep_plot)
from supcon.train.callbacks import RunEnd

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_counts():
    predictions = torch.tensor([0, 1, 1, 2, 2, 2])
    labels = torch.tensor([0, 1, 2, 2, 2, 0])
    expected = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 1, 2]])
    assert torch.equal(report.confusion_matrix(predictions, labels, 3), expected)
    with pytest.raises(ValueError, match="shape"):
        report.confusion_matrix(predictions, labels[:3], 3)


def test_plot_helpers_write_pngs(tmp_path):
    acc = {"a": {"fog": [90.0, 80.0], "contrast": [85.0, 40.0]}, "b": {"fog": [70.0, 60.0], "contrast": [50.0, 10.0]}}
    for path in (report.plot_robustness_heatmap(acc, [1, 5], tmp_path / "h.png", clean={"a": 95.0, "b": 90.0}),
                 report.plot_accuracy_vs_severity(acc, [1, 5], tmp_path / "s.png"),
                 report.plot_confusion_matrix(torch.tensor([[3, 1], [0, 4]]), tmp_path / "c.png", classes=["x", "y"])):
        assert Path(path).read_bytes()[:8] == PNG


def _finished_run(run_dir: Path, features: torch.Tensor | None) -> RunEnd:
    (run_dir / "metrics.csv").write_text("epoch,loss,test_acc\n1,2.0,50.0\n2,1.0,75.0\n")
    cfg = config_from_dict({"tsne_points": 12, "seed": 3})
    labels = torch.arange(20) % 4 if features is not None else None
    return RunEnd(run_dir=run_dir, cfg=cfg, kind="pretrain", title="supcon", test_features=features,
                  test_labels=labels, classes=["a", "b", "c", "d"])


def test_training_plots_write_the_loss_curves_and_the_tsne(tmp_path):
    assert training_plots(config_from_dict({"plots": False})) == []
    callbacks = training_plots(config_from_dict({"plots": True}))
    assert len(callbacks) == 1
    (tmp_path / "pre").mkdir()
    callbacks[0](_finished_run(tmp_path / "pre", torch.randn(20, 6, generator=torch.Generator().manual_seed(0))))
    assert (tmp_path / "pre" / "loss.png").read_bytes()[:8] == PNG
    assert (tmp_path / "pre" / "tsne.png").read_bytes()[:8] == PNG
    # a linear probe hands no test features: loss curves only
    (tmp_path / "lin").mkdir()
    callbacks[0](_finished_run(tmp_path / "lin", None))
    assert (tmp_path / "lin" / "loss.png").is_file() and not (tmp_path / "lin" / "tsne.png").exists()


def test_on_finish_writers_use_the_run_file_names(tmp_path):
    summary = {"severities": [1, 5], "models": {
        "model": {"method": "supcon", "clean_accuracy": 95.0, "accuracy": {"fog": [90.0, 80.0]}},
        "baseline": {"method": "ce", "clean_accuracy": 90.0, "accuracy": {"fog": [70.0, 60.0]}}}}
    write_robustness_plots(summary, tmp_path)
    rows = [{"method": "supcon", "accuracy": 70.0}, {"method": "supcon", "accuracy": 65.0},
            {"method": "ce", "accuracy": 55.0}]
    write_sweep_plot(rows, tmp_path)
    z = torch.nn.functional.normalize(torch.randn(12, 4, generator=torch.Generator().manual_seed(1),
                                                  dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    analysis = analyze_gradients(z, labels, 0.1, bins=3)
    pairs = {v: {k: t.float() if t.is_floating_point() else t for k, t in gradient_pairs(z, labels, 0.1, v).items()}
             for v in ("out", "in")}
    write_gradients_plot(analysis, pairs, tmp_path, 0, max_points=50)
    for name in ("robustness_heatmap.png", "robustness_severity.png", "sweep_box.png", "gradients.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG, name


def test_class_and_run_names_that_were_not_utf8_are_drawn(tmp_path):
    """A class folder named b'caf\\xff' reaches matplotlib as 'caf\\udcff', which it cannot draw."""
    name = os.fsdecode(b"caf\xff")
    features = torch.randn(20, 6, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(20) % 2
    assert report.plot_tsne(features, labels, tmp_path / "t.png", classes=[name, "ok"],
                            title=f"run {name}").read_bytes()[:8] == PNG
    assert report.plot_confusion_matrix(torch.tensor([[3, 1], [0, 4]]), tmp_path / "c.png", classes=[name, "ok"],
                                        title=name).read_bytes()[:8] == PNG
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "metrics.csv").write_text("epoch,loss\n1,2.0\n")
    assert report.plot_training_curves(run_dir).read_bytes()[:8] == PNG


@pytest.mark.parametrize("points, plotted", [(0, False), (2, True), (3, True)])
def test_tsne_points_zero_draws_no_tsne_and_two_points_are_enough(tmp_path, points, plotted):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    end = _finished_run(run_dir, torch.randn(20, 6, generator=torch.Generator().manual_seed(0)))
    end = RunEnd(**{**vars(end), "cfg": config_from_dict({"tsne_points": points})})
    training_plots(config_from_dict({"plots": True}))[0](end)
    assert (run_dir / "loss.png").is_file() and (run_dir / "tsne.png").is_file() == plotted
