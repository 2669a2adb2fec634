""":func:`write_report`: run folders -> ``report.md`` (images in ``report_files/``) and a self-contained
``report.html``.

It gathers single runs, `supcon run` folders (their ``supcon/``, ``simclr/``, ``ce/`` runs and
``summary.json``), robustness, sweep and gradient outputs; see :func:`find_report_inputs`.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from supcon.checkpoint import load_failure
from supcon.config import config_from_dict, known_config_values
from supcon.data import DatasetError, ImageDataset, load_test_split
from supcon.eval.gradients import gradients_rows
from supcon.eval.robustness import robustness_rows
from supcon.eval.sweep import sweep_spread
from supcon.metrics import confusion_matrix
from supcon.report.collect import RUN_HEADER, ReportInputs, Run, find_report_inputs, load_run, read_json, run_row
from supcon.report.document import Document
from supcon.report.plots import plot_confusion_matrix
from supcon.runfiles import (CONFIG_YAML, GRADIENTS_JSON, GRADIENTS_PLOT, LOSS_PLOT, REPORT_FILES, REPORT_HTML,
                             REPORT_MD, ROBUSTNESS_HEATMAP, ROBUSTNESS_JSON, ROBUSTNESS_SEVERITY, SUMMARY_JSON,
                             SWEEP_BOX, SWEEP_CSV, SWEEP_JSON, TEST_PREDICTIONS, TSNE_PLOT)

__all__ = ["write_report"]

#: Scratch folder for the confusion matrices, inside the output folder while the report is written.
_SCRATCH_DIR = ".report_plots"
#: Test splits by (dataset, image size, seed, test fraction), loaded once per report.
_SplitCache = dict[tuple[Any, ...], ImageDataset]


def _test_split_of(run: Run, cache: _SplitCache) -> ImageDataset:
    """The test split named by the run's config (loaded once per distinct split)."""
    if not run.config.get("dataset"):
        raise DatasetError(f"its {CONFIG_YAML} names no dataset")
    cfg = config_from_dict(known_config_values(run.config))
    key = (cfg.dataset, cfg.image_size, cfg.seed, cfg.test_fraction)
    if key not in cache:
        cache[key] = load_test_split(cfg)
    return cache[key]


def _read_predictions(path: Path, test: ImageDataset) -> torch.Tensor:
    """The ``(N,)`` integer class predictions in ``path`` (loaded with ``weights_only=True``), checked
    against the test split.

    Raises:
        ValueError: the file cannot be read as tensors only (a pickled object is refused, never run), or
            it holds something other than one prediction per test image in ``[0, classes)``.
    """
    try:
        predictions = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors (a refused object), truncated or foreign files
        raise ValueError(f"{TEST_PREDICTIONS} cannot be read ({load_failure(exc)})") from None
    if not isinstance(predictions, torch.Tensor):
        raise ValueError(f"{TEST_PREDICTIONS} holds a {type(predictions).__name__}, expected a tensor of class indices")
    if predictions.shape != test.labels.shape or predictions.is_floating_point() or predictions.is_complex():
        raise ValueError(
            f"{TEST_PREDICTIONS} holds a {predictions.dtype} tensor of shape {tuple(predictions.shape)}, expected "
            f"{test.labels.shape[0]} integer class indices (one per test image)")
    if predictions.numel() and not 0 <= int(predictions.min()) <= int(predictions.max()) < test.num_classes:
        raise ValueError(f"{TEST_PREDICTIONS} holds classes outside 0..{test.num_classes - 1}")
    return predictions


def _run_confusion(run: Run, files: Path, cache: _SplitCache) -> tuple[Path | None, str | None]:
    """confusion.png for a run with test_predictions.pt (labels from its config's test split);
    otherwise no path, and a note saying why when the run has predictions."""
    pred_path = run.path / TEST_PREDICTIONS
    if not pred_path.is_file():
        return None, None
    try:
        test = _test_split_of(run, cache)
        predictions = _read_predictions(pred_path, test)
    except (DatasetError, OSError, RuntimeError, ValueError, TypeError) as exc:
        return None, f"no confusion matrix for {run.name}: {exc}"
    matrix = confusion_matrix(predictions, test.labels, test.num_classes)
    out = files / f"confusion_{re.sub(r'[^A-Za-z0-9]+', '_', run.name).strip('_') or 'run'}.png"
    acc = 100.0 * float(matrix.diag().sum()) / max(1, int(matrix.sum()))
    plot_confusion_matrix(matrix, out, classes=test.classes, title=f"{run.name}: test confusion ({acc:.2f}% top-1)")
    return out, None


def _summary_sections(doc: Document, inputs: ReportInputs) -> None:
    for folder in inputs.summaries:
        summary = read_json(folder / SUMMARY_JSON)
        if not summary:
            continue
        doc.heading(1, f"Method comparison: {inputs.name(folder)}")
        doc.table(["method", "linear-probe top-1 (%)", "kNN top-1 (%)", "time (s)"],
                  [[m, r.get("linear_acc"), r.get("knn_acc"), r.get("seconds")] for m, r in summary.items()
                   if isinstance(r, dict)])


def _run_sections(doc: Document, runs: Sequence[Run], work: Path) -> None:
    if not runs:
        return
    doc.heading(1, "Runs")
    doc.table(RUN_HEADER, [run_row(r) for r in runs])
    cache: _SplitCache = {}
    for run in runs:
        doc.heading(2, f"{run.name} ({run.kind}, {run.method})")
        confusion, note = _run_confusion(run, work, cache)
        if note:
            doc.text(note, note=True)
        doc.images([(run.path / LOSS_PLOT, f"{run.name}: training loss and accuracy"),
                    (run.path / TSNE_PLOT, f"{run.name}: t-SNE of test embeddings"),
                    (confusion, f"{run.name}: confusion matrix")])
        doc.code(f"config of {run.name}", yaml.safe_dump(run.config, sort_keys=False))


def _robustness_section(doc: Document, folder: Path, name: str) -> None:
    summary = read_json(folder / ROBUSTNESS_JSON)
    if not summary.get("models"):
        return
    doc.heading(1, f"Robustness: {name}")
    doc.text(f"Test split of {summary.get('dataset')} ({summary.get('test_images')} images), corruptions from "
             f"{summary.get('source')}: {', '.join(summary.get('corruptions', []))}; severities "
             f"{summary.get('severities')}. mCE and relative mCE over {len(summary.get('mce_corruptions', []))} "
             f"benchmark corruptions, baseline = 100"
             f"{'' if summary.get('mce_complete') else ' (not the full 15 corruptions x 5 severities)'}.")
    doc.table(*robustness_rows(summary))
    models = summary["models"]
    corruptions = summary.get("corruptions", [])
    header = ["corruption"] + [f"{k} acc (%) s{s}" for k in models for s in summary.get("severities", [])]
    rows = [[c] + [v for k in models for v in models[k]["accuracy"].get(c, [])] for c in corruptions]
    if summary.get("ce"):
        header += ["CE (%)", "relative CE (%)"]
        for row, c in zip(rows, corruptions):
            row += [summary["ce"].get(c), (summary.get("relative_ce") or {}).get(c)]
    doc.table(header, rows)
    for note in summary.get("notes", []):
        doc.text(note, note=True)
    doc.images([(folder / ROBUSTNESS_HEATMAP, f"{name}: accuracy per corruption and severity"),
                (folder / ROBUSTNESS_SEVERITY, f"{name}: accuracy against severity")])


def _maybe_number(text: Any) -> Any:
    """A CSV cell as float when it is a non-integer number (so tables round it), else unchanged."""
    if isinstance(text, str) and "." in text:
        try:
            return float(text)
        except ValueError:
            return text
    return text


def _sweep_section(doc: Document, folder: Path, name: str) -> None:
    doc.heading(1, f"Sweep: {name}")
    with (folder / SWEEP_CSV).open() as handle:
        rows = list(csv.DictReader(handle))
    data = read_json(folder / SWEEP_JSON) if (folder / SWEEP_JSON).is_file() else {}
    if data.get("grid"):
        doc.text("Grid: " + "; ".join(f"{k} = {', '.join(map(str, v))}" for k, v in data["grid"].items())
                 + f". Epochs per run: {data.get('epochs')}.")
    if rows:
        spread = sweep_spread([r for r in rows if r.get("accuracy") not in (None, "")])
        doc.table(["method", "runs", "mean (%)", "std", "min", "median", "max"],
                  [[m, s["runs"], s["mean"], s["std"], s["min"], s["median"], s["max"]] for m, s in spread.items()])
        keys = [k for k in rows[0] if k not in ("run_dir",)]
        doc.table(keys, [[_maybe_number(r[k]) for k in keys] for r in rows])
    doc.images([(folder / SWEEP_BOX, f"{name}: accuracy spread per method")])


def _gradients_section(doc: Document, folder: Path, name: str) -> None:
    analysis = read_json(folder / GRADIENTS_JSON)
    if "out" not in analysis:
        return
    doc.heading(1, f"Gradient analysis: {name}")
    doc.text(f"{analysis.get('images')} test images x 2 views of {analysis.get('dataset')}, t = "
             f"{analysis.get('temperature')}, encoder + head of {analysis.get('pretrain_checkpoint')}. "
             "Hard positives: below-median similarity; hard negatives: above-median. Magnitudes are "
             "taken through the normalisation Jacobian (the paper's supplementary analysis).")
    doc.table(*gradients_rows(analysis))
    doc.images([(folder / GRADIENTS_PLOT, f"{name}: gradient terms against similarity")])


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
    work = out / _SCRATCH_DIR
    work.mkdir(exist_ok=True)
    doc = Document(title)
    doc.text(f"Folders: {', '.join(str(Path(p)) for p in paths)}. Accuracies are top-1 on each run's test split.")
    _summary_sections(doc, inputs)
    _run_sections(doc, [load_run(p, inputs.name(p)) for p in inputs.runs], work)
    for folder in inputs.robustness:
        _robustness_section(doc, folder, inputs.name(folder))
    for folder in inputs.sweeps:
        _sweep_section(doc, folder, inputs.name(folder))
    for folder in inputs.gradients:
        _gradients_section(doc, folder, inputs.name(folder))
    md_path, html_path = out / REPORT_MD, out / REPORT_HTML
    md_path.write_text(doc.markdown(out / REPORT_FILES), encoding="utf-8")
    html_path.write_text(doc.html(), encoding="utf-8")
    shutil.rmtree(work, ignore_errors=True)
    return md_path, html_path
