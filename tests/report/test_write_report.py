"""Reports (supcon.report.write_report and `supcon report`) on tiny runs: a `supcon run` folder with
robustness, sweep and gradient outputs, and single run folders."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from supcon import report
from supcon.cli import main
from supcon.config import config_from_dict
from supcon.eval.gradients import run_gradients
from supcon.eval.pipeline import run_methods
from supcon.eval.robustness import run_robustness
from tiny_runs import TINY_SETTINGS, flags_for


@pytest.fixture(scope="module")
def tiny_project(tiny_npz, tmp_path_factory):
    """`supcon run` (supcon + ce) with plots, then robustness, gradients and a sweep folder beside it."""
    root = tmp_path_factory.mktemp("report_runs")
    cfg = config_from_dict({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS, "plots": True, "tsne_points": 24})
    run_methods(cfg, root / "run", ["supcon", "ce"], callbacks=report.training_plots(cfg))
    run_robustness(root / "run" / "supcon" / "linear" / "checkpoint.pt", root / "run" / "robustness",
                   baseline=root / "run" / "ce" / "checkpoint.pt", corruptions="contrast", severities="2",
                   device="cpu", on_finish=report.write_robustness_plots)
    run_gradients(root / "run" / "supcon" / "checkpoint.pt", root / "run" / "gradients", batch=8, bins=2,
                  device="cpu", on_finish=report.write_gradients_plot)
    sweep = root / "sweep"
    sweep.mkdir()
    rows = [{"method": "supcon", "temperature": 0.1, "accuracy": 70.0, "knn_acc": 60.0, "seconds": 1.0,
             "run_dir": "supcon/temperature=0.1"},
            {"method": "supcon", "temperature": 0.5, "accuracy": 65.0, "knn_acc": 61.0, "seconds": 1.0,
             "run_dir": "supcon/temperature=0.5"},
            {"method": "ce", "temperature": "", "accuracy": 55.0, "knn_acc": 50.0, "seconds": 1.0,
             "run_dir": "ce/default"}]
    with (sweep / "sweep.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report.plot_sweep_box(rows, sweep / "sweep_box.png")
    # a sweep's own runs are summarised by the sweep, not listed as runs
    (sweep / "supcon" / "temperature=0.1").mkdir(parents=True)
    (sweep / "supcon" / "temperature=0.1" / "config.yaml").write_text("method: supcon\n")
    (sweep / "supcon" / "temperature=0.1" / "metrics.json").write_text("{}")
    return root


def _img_sources(html: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)


def test_report_of_a_run_folder_is_self_contained(tiny_project, tmp_path):
    md_path, html_path = report.write_report([tiny_project / "run", tiny_project / "sweep"], tmp_path / "rep")
    html = html_path.read_text()
    sources = _img_sources(html)
    # loss.png x3 (supcon, its probe, ce), t-SNE x2, confusion x2 (probe, ce), robustness x2, gradients, sweep
    assert len(sources) == 11
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert "data:image/png;base64" in html
    # nothing external: no URLs, stylesheets, scripts or file references
    assert not re.search(r"https?://|<link|<script|src=\"(?!data:)|url\(", html)
    for name in ("run/supcon", "run/supcon/linear", "run/ce", "Method comparison", "Robustness", "Sweep",
                 "Gradient analysis", "config of run/ce", "relative mCE"):
        assert name in html, name
    assert "temperature=0.1" not in html.split("Sweep")[0]  # the sweep's run is not listed with the runs
    md = md_path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 11
    for link in links:
        assert (md_path.parent / link).is_file(), link
    assert "| method | linear-probe top-1 (%) |" in md


def test_report_tables_hold_the_run_metrics(tiny_project, tmp_path):
    md_path, _ = report.write_report([tiny_project / "run"], tmp_path / "rep")
    md = md_path.read_text()
    ce_acc = json.loads((tiny_project / "run" / "ce" / "metrics.json").read_text())["test_acc"]
    row = next(line for line in md.splitlines() if line.startswith("| run/ce |"))
    assert f"{ce_acc:.4g}" in row and "| ce |" in row


def test_report_on_a_single_run_folder(tiny_project, tmp_path):
    md_path, html_path = report.write_report([tiny_project / "run" / "ce"], tmp_path / "single")
    html = html_path.read_text()
    assert len(_img_sources(html)) == 3  # loss, t-SNE, confusion
    assert "ce (ce, ce)" in html
    assert md_path.is_file()


def test_cli_report_and_its_errors(tiny_project, tmp_path, capsys):
    assert main(["report", str(tiny_project / "run" / "supcon"), "--out", str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out
    assert (tmp_path / "r" / "report.html").is_file() and (tmp_path / "r" / "report.md").is_file()
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r2")]) == 2
    assert "no runs found" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "r3")]) == 2
    assert "is not a folder" in capsys.readouterr().err


class _Pickled:
    """An arbitrary object: a weights-only load refuses it (its pickle never runs)."""

    def __reduce__(self):
        return (print, ("a pickled object ran",))


@pytest.mark.parametrize(
    "content, note",
    [
        (_Pickled(), r"test_predictions.pt cannot be read \(UnpicklingError: it holds objects a weights-only load"),
        ({"predictions": [1, 2]}, "test_predictions.pt holds a dict, expected a tensor of class indices"),
        ("wrong_shape", r"holds a torch.int64 tensor of shape \(3,\), expected 32 integer class indices"),
        ("float", r"holds a torch.float32 tensor of shape \(32,\)"),
        ("out_of_range", r"holds classes outside 0..3"),
    ],
)
def test_a_wrong_or_malicious_predictions_file_gives_a_note(tiny_project, tmp_path, capsys, content, note):
    run = tmp_path / "ce"
    shutil.copytree(tiny_project / "run" / "ce", run)
    good = torch.load(run / "test_predictions.pt", weights_only=True)
    if isinstance(content, str):
        content = {"wrong_shape": good[:3], "float": good.float(), "out_of_range": good + 4}[content]
    torch.save(content, run / "test_predictions.pt")
    md_path, html_path = report.write_report([run], tmp_path / "rep")
    md = md_path.read_text()
    assert re.search(rf"> no confusion matrix for ce: .*{note}", md)
    assert "confusion" not in " ".join(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md))
    assert "a pickled object ran" not in capsys.readouterr().out
    assert main(["report", str(run), "--out", str(tmp_path / "cli")]) == 0


ATTACK = "<img src=x onerror=alert(1)>"


def test_run_folder_names_and_the_title_are_escaped(tiny_project, tmp_path):
    run = tmp_path / ATTACK
    shutil.copytree(tiny_project / "run" / "ce", run)
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--title", f"{ATTACK} title"]) == 0
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    html = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert md.startswith(f"# {escaped} title\n") and f"### {escaped} (ce, ce)" in md and f"| {escaped} | ce |" in md
    assert "<img" not in md.split("```yaml")[0]
    assert "<img src=x" not in html and f"<h1>{escaped} title</h1>" in html


def test_a_class_folder_and_a_run_folder_not_in_utf8(tmp_path):
    """Class names and folder names that are not UTF-8 are shown with U+FFFD in the plots and the report."""
    data = os.path.join(os.fsencode(tmp_path), b"data")
    for k, name in enumerate((b"caf\xff", b"ok")):
        os.makedirs(os.path.join(data, name))
        for i in range(10):
            image = np.random.default_rng(10 * k + i).integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(image).save(os.path.join(data, name, b"%d.png" % i))
    out = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"run\xff"))
    settings = {**TINY_SETTINGS, "plots": True, "tsne_points": 8}
    assert main(["train-ce", "--out", out, *flags_for({"dataset": f"folder:{os.fsdecode(data)}", **settings})]) == 0
    assert os.path.isfile(os.path.join(out, "tsne.png"))
    md_path, html_path = report.write_report([out], tmp_path / "rep", title=os.fsdecode(b"title \xfe"))
    md = md_path.read_text(encoding="utf-8")
    assert md.startswith("# title \ufffd\n") and "### run\ufffd (ce, ce)" in md
    assert len(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)) == 3  # loss, t-SNE, confusion
    assert "run\ufffd" in html_path.read_text(encoding="utf-8")
