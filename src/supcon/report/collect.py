"""Finding what a report covers: run folders, `supcon run` summaries and analysis outputs, and reading runs."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supcon.config import PRETRAIN_METHODS, ConfigError, ce_epoch_count, ce_learning_rate, read_yaml_mapping
from supcon.report.plots import read_metrics
from supcon.runfiles import (CONFIG_YAML, GRADIENTS_JSON, METRICS_CSV, METRICS_JSON, REPORT_FILES, ROBUSTNESS_JSON,
                             SUMMARY_JSON, SWEEP_CSV)

__all__ = ["ReportInputs", "find_report_inputs", "Run", "load_run", "read_json", "run_row", "RUN_HEADER"]

log = logging.getLogger(__name__)


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

    def empty(self) -> bool:
        return not (self.runs or self.summaries or self.robustness or self.sweeps or self.gradients)


def _checked_dirs(paths: Sequence[str | Path]) -> list[Path]:
    if not paths:
        raise ConfigError("report: give at least one run folder")
    dirs = []
    for p in paths:
        p = Path(p)
        if not p.is_dir():
            raise ConfigError(f"report: {p} is not a folder")
        dirs.append(p.resolve())
    return dirs


def _sort_folder(found: ReportInputs, here: Path, names: set[str]) -> bool:
    """Files one folder into ``found``; True when the walk must not go below it (a sweep)."""
    if SWEEP_CSV in names:
        found.sweeps.append(here)
        return True
    if CONFIG_YAML in names and (METRICS_JSON in names or METRICS_CSV in names):
        found.runs.append(here)
    if SUMMARY_JSON in names:
        found.summaries.append(here)
    if ROBUSTNESS_JSON in names:
        found.robustness.append(here)
    if GRADIENTS_JSON in names:
        found.gradients.append(here)
    return False


def find_report_inputs(paths: Sequence[str | Path]) -> ReportInputs:
    """Walks the folders for runs (``config.yaml``), ``summary.json``, ``robustness.json``,
    ``sweep.csv`` (whose run folders are summarised by the sweep, not listed one by one) and
    ``gradients.json``.

    Raises:
        ConfigError: a path that is not a folder, or folders holding none of these.
    """
    dirs = _checked_dirs(paths)
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    root = common.parent if len(dirs) == 1 or common in dirs else common
    found = ReportInputs(root=root)
    seen: set[Path] = set()
    for top in dirs:
        for current, subdirs, files in os.walk(top):
            here = Path(current)
            # never into hidden folders or a report's own images
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != REPORT_FILES)
            if here in seen:
                subdirs[:] = []
                continue
            seen.add(here)
            if _sort_folder(found, here, set(files)):
                subdirs[:] = []
    if found.empty():
        raise ConfigError(
            f"report: no runs found in {', '.join(map(str, paths))} (looked for folders with config.yaml and "
            "metrics, summary.json, robustness.json, sweep.csv or gradients.json)")
    return found


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; an unreadable file or one that is not an object gives ``{}`` (logged)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("could not read %s: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class Run:
    """One training run folder: its config (``config.yaml``) and final metrics."""

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


def load_run(path: Path, name: str) -> Run:
    """Reads a run folder; an unreadable config is logged and left empty, metrics fall back to the
    last row of ``metrics.csv``."""
    try:
        config = read_yaml_mapping(path / CONFIG_YAML, "run config")
    except ConfigError as exc:
        log.warning("could not read %s: %s", path / CONFIG_YAML, exc)
        config = {}
    metrics = read_json(path / METRICS_JSON) if (path / METRICS_JSON).is_file() else {}
    if not metrics:
        rows = read_metrics(path)
        metrics = dict(rows[-1]) if rows else {}
    return Run(path, name, config, metrics)


RUN_HEADER = ["run", "kind", "method", "dataset", "arch", "epochs", "batch", "lr", "temperature",
              "label fraction", "test acc (%)", "kNN acc (%)", "online probe (%)", "final loss", "train time (s)"]


def run_row(run: Run) -> list[Any]:
    """The run's row of the report's run table (columns :data:`RUN_HEADER`)."""
    c, m = run.config, run.metrics
    if run.kind in ("linear", "finetune"):
        epochs, lr, batch = c.get("linear_epochs"), c.get("linear_lr"), c.get("linear_batch_size")
    elif run.kind == "ce":
        epochs, lr, batch = ce_epoch_count(c), ce_learning_rate(c), c.get("batch_size")
    else:
        epochs, lr, batch = c.get("epochs"), c.get("lr"), c.get("batch_size")
    temperature = c.get("temperature") if run.method in PRETRAIN_METHODS else None
    return [run.name, run.kind, run.method, c.get("dataset"), c.get("arch"), epochs, batch, lr, temperature,
            c.get("label_fraction") or 1.0, m.get("test_acc"), m.get("knn_acc"), m.get("online_probe_acc"),
            m.get("loss"), m.get("total_seconds")]
