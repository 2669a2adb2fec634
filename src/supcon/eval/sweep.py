"""Hyper-parameter sweeps (the SupCon paper's Fig. 4, stability to hyper-parameters).

:func:`run_sweep` trains a grid of configs for each method (SupCon/SimCLR: pretrain + linear probe;
CE: end to end, through :func:`supcon.eval.pipeline.train_and_probe`) and tabulates the accuracy
spread (:func:`sweep_spread`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supcon.config import RUN_METHODS, Config, ConfigError, coerce
from supcon.data import DataSplits, load_splits
from supcon.eval.pipeline import check_methods, train_and_probe
from supcon.runfiles import (LINEAR_DIR, METRICS_JSON, SWEEP_CSV, SWEEP_JSON, claim_run_dir, write_csv_atomic,
                             write_text_atomic)
from supcon.train.methods.common import run_inputs

__all__ = ["parse_grid", "SweepRun", "plan_sweep", "run_sweep", "sweep_spread", "CE_IRRELEVANT_KEYS",
           "CONTRASTIVE_IRRELEVANT_KEYS", "SweepFinish", "SWEEP_PARTS"]

#: Config keys that do not change a cross-entropy run (it has no contrastive loss, head or probe).
CE_IRRELEVANT_KEYS: frozenset[str] = frozenset({
    "method", "temperature", "variant", "views", "head", "feat_dim", "online_probe", "queue_size",
    "key_momentum", "linear_epochs", "linear_lr", "linear_batch_size", "linear_augment", "finetune",
    "plots", "tsne_points", "progress", "log_every",
})
#: Config keys that do not change a contrastive run (pretrain + linear probe).
CONTRASTIVE_IRRELEVANT_KEYS: frozenset[str] = frozenset({"ce_lr", "ce_epochs", "plots", "tsne_points",
                                                         "progress", "log_every"})

#: The nested runs of a sweep folder (``--overwrite`` replaces these): ``<method>/<grid point>`` and its probe.
SWEEP_PARTS: tuple[str, ...] = tuple(part for m in RUN_METHODS for part in (f"{m}/*", f"{m}/*/{LINEAR_DIR}"))

#: Called by :func:`run_sweep` once its files are written: ``(rows, out folder)``.
SweepFinish = Callable[[Sequence[Mapping[str, Any]], Path], None]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["temperature=0.05,0.1", "batch_size=64,128"]`` -> ``{"temperature": [0.05, 0.1], ...}``.

    Keys are :class:`Config` fields (``-`` may stand for ``_``); values are converted to the
    field's type; repeated values are dropped.

    Raises:
        ConfigError: a malformed item, an unknown key, a bad value, a key given twice, or ``method``
            (choose methods with ``--methods``).
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--grid entry {item!r} must look like key=value1,value2")
        if key == "method":
            raise ConfigError("--grid cannot vary 'method': list the methods with --methods")
        if key in grid:
            raise ConfigError(f"--grid names {key!r} twice")
        parsed: list[Any] = []
        for raw in values.split(","):
            raw = raw.strip()
            if not raw:
                raise ConfigError(f"--grid entry {item!r} has an empty value")
            value = coerce(key, raw)
            if value not in parsed:
                parsed.append(value)
        grid[key] = parsed
    return grid


@dataclass
class SweepRun:
    """One run of a sweep: its method, the grid values it uses, its config and its folder name."""

    method: str
    params: dict[str, Any]
    config: Config
    name: str


def _run_name(method: str, params: Mapping[str, Any]) -> str:
    if not params:
        return f"{method}/default"
    parts = []
    for key, value in params.items():
        text = str(value).replace(os.sep, "-").replace(" ", "")
        parts.append(f"{key}={text}")
    return f"{method}/" + "_".join(parts)


def _skipped_keys(base: Config, method: str) -> set[str]:
    """Grid axes that cannot change a run of ``method``."""
    if method != "ce":
        return set(CONTRASTIVE_IRRELEVANT_KEYS)
    skip = set(CE_IRRELEVANT_KEYS)
    if base.ce_lr is not None:
        skip.add("lr")
    if base.ce_epochs is not None:
        skip.add("epochs")
    return skip


def plan_sweep(base: Config, grid: Mapping[str, Sequence[Any]], methods: Sequence[str]) -> list[SweepRun]:
    """Every (method, grid point) to train; axes that cannot change a method's result are skipped.

    Cross-entropy ignores the contrastive keys (``temperature``, ``views``, ``head``, the probe's
    ``linear_*``...; see :data:`CE_IRRELEVANT_KEYS`), ``lr`` when ``ce_lr`` is set and ``epochs``
    when ``ce_epochs`` is set; contrastive methods ignore ``ce_lr`` and ``ce_epochs``. Identical
    configs are run once.

    Raises:
        ConfigError: a method not in :data:`supcon.config.RUN_METHODS` or a grid point that is not
            a valid config.
    """
    runs: list[SweepRun] = []
    for method in check_methods(methods):
        skip = _skipped_keys(base, method)
        axes = [k for k in grid if k not in skip]
        seen: set[tuple[Any, ...]] = set()
        for values in itertools.product(*(grid[k] for k in axes)):
            params = dict(zip(axes, values))
            key = tuple(values)
            if key in seen:
                continue
            seen.add(key)
            overrides = dict(params, plots=False)
            if method != "ce":
                overrides["method"] = method
            cfg = dataclasses.replace(base, **overrides)  # validated by Config.__post_init__
            runs.append(SweepRun(method, params, cfg, _run_name(method, params)))
    return runs


def _data_key(cfg: Config) -> tuple[Any, ...]:
    return (cfg.dataset, cfg.image_size, cfg.test_fraction, cfg.label_fraction, cfg.seed, cfg.download)


def _finished_metrics(run: SweepRun, run_dir: Path) -> dict[str, Any] | None:
    """The accuracies of a run that finished in an earlier sweep, or None."""
    final = run_dir / METRICS_JSON if run.method == "ce" else run_dir / LINEAR_DIR / METRICS_JSON
    pre = run_dir / METRICS_JSON
    if not final.is_file() or not pre.is_file():
        return None
    metrics = json.loads(final.read_text())
    if run.method == "ce":
        return {"accuracy": metrics.get("test_acc"), "knn_acc": metrics.get("knn_acc")}
    return {"accuracy": metrics.get("test_acc"), "knn_acc": json.loads(pre.read_text()).get("knn_acc")}


def _train_run(run: SweepRun, run_dir: Path, data_cache: dict[tuple[Any, ...], DataSplits],
               inputs: Sequence[str | Path]) -> dict[str, Any]:
    """Trains one run afresh (its data loaded once per distinct split); accuracy and kNN accuracy."""
    key = _data_key(run.config)
    if key not in data_cache:
        data_cache[key] = load_splits(run.config)
    result = train_and_probe(run.method, run.config, run_dir, overwrite=True, data=data_cache[key], inputs=inputs)
    return {"accuracy": result["accuracy"], "knn_acc": result["knn_acc"]}


def run_sweep(base: Config, grid: Mapping[str, Sequence[Any]], methods: Sequence[str], out: str | Path, *,
              resume: bool = False, overwrite: bool = False, on_finish: SweepFinish | None = None,
              on_result: Callable[[SweepRun, dict[str, Any]], None] | None = None,
              inputs: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """Trains every run of :func:`plan_sweep` in-process and tabulates the accuracies.

    SupCon / SimCLR runs pretrain and linear-probe (``out/<method>/<params>/`` and its ``linear/``);
    CE runs train end to end. Every run uses the same epochs (the base config's). Plots of single
    runs are off. Writes ``sweep.csv`` (one row per run: method, grid values, linear-probe or CE
    test accuracy, kNN accuracy, seconds, folder; rewritten after each run) and ``sweep.json`` (rows
    and per-method spread), then calls ``on_finish(rows, out)``, e.g.
    :func:`supcon.report.plots.write_sweep_plot` for ``sweep_box.png`` (None: no plot).

    Args:
        resume: reuse runs of ``out`` that finished; train the others.
        overwrite: replace the sweep in ``out`` (its files and the runs of :data:`SWEEP_PARTS`; never
            files that are not supcon's, nor a folder that is or holds a dataset or ``inputs``).
        on_result: called with each run and its row as soon as it is done.
        inputs: files the sweep reads besides its datasets (the --config file).

    Raises:
        RunDirError: ``out`` holds a sweep and neither ``resume`` nor ``overwrite`` is given;
            another run holds ``out``; an ``overwrite`` that would delete what is not supcon's.
    """
    out = Path(out)
    runs = plan_sweep(base, grid, methods)
    read = [path for run in runs for path in run_inputs(run.config, *inputs)]
    with claim_run_dir(out, "sweep", resume=resume, overwrite=overwrite, inputs=read, parts=SWEEP_PARTS):
        rows = _train_runs(runs, list(grid), out, resume, on_result, inputs)
        summary = {"grid": {k: list(v) for k, v in grid.items()}, "methods": list(dict.fromkeys(methods)),
                   "epochs": base.epochs, "rows": rows, "spread": sweep_spread(rows)}
        write_text_atomic(out / SWEEP_JSON, json.dumps(summary, indent=2, default=str))
        if on_finish is not None:
            on_finish(rows, out)
    return rows


def _train_runs(runs: Sequence[SweepRun], keys: list[str], out: Path, resume: bool,
                on_result: Callable[[SweepRun, dict[str, Any]], None] | None,
                inputs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Each run in turn (a finished one reused under ``resume``); sweep.csv rewritten after each."""
    fields = ["method", *keys, "accuracy", "knn_acc", "seconds", "run_dir"]
    data_cache: dict[tuple[Any, ...], DataSplits] = {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        run_dir = out / run.name
        t0 = time.perf_counter()
        result = _finished_metrics(run, run_dir) if resume else None
        if result is None:
            result = _train_run(run, run_dir, data_cache, inputs)
        row = {"method": run.method, **{k: run.params.get(k, "") for k in keys}, **result,
               "seconds": round(time.perf_counter() - t0, 3), "run_dir": run.name}
        rows.append(row)
        write_csv_atomic(out / SWEEP_CSV, rows, fields)
        if on_result is not None:
            on_result(run, row)
    return rows


def sweep_spread(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method: runs, mean, std (population), min, median, max of ``accuracy``."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        accs = sorted(float(r["accuracy"]) for r in rows if r["method"] == method)
        n = len(accs)
        mean = sum(accs) / n
        mid = accs[n // 2] if n % 2 else 0.5 * (accs[n // 2 - 1] + accs[n // 2])
        out[method] = {"runs": n, "mean": mean, "std": math.sqrt(sum((a - mean) ** 2 for a in accs) / n),
                       "min": accs[0], "median": mid, "max": accs[-1]}
    return out
