"""What a run folder holds: the file names, atomic writers, and the rules for starting a run there.

Every command writes its results through these names, and :mod:`supcon.report` reads them back by
the same names, so a file is named in exactly one place. Writers go to a temporary file in the same
folder and ``os.replace`` it, so a reader never sees half a file and a killed run leaves the last
complete version behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_YAML", "METRICS_CSV", "METRICS_JSON", "TEST_PREDICTIONS", "LOSS_PLOT",
    "TSNE_PLOT", "SUMMARY_JSON", "SUMMARY_MD", "ROBUSTNESS_JSON", "ROBUSTNESS_CSV", "ROBUSTNESS_HEATMAP",
    "ROBUSTNESS_SEVERITY", "SWEEP_CSV", "SWEEP_JSON", "SWEEP_BOX", "GRADIENTS_JSON", "GRADIENTS_CSV",
    "GRADIENTS_PLOT", "REPORT_MD", "REPORT_HTML", "REPORT_FILES", "LINEAR_DIR", "RunDirError", "write_atomic",
    "write_text_atomic",
    "write_json_atomic", "write_csv_atomic", "holds_run", "prepare_run_dir",
]

# A training run (pretrain, linear, ce): what fit() and the methods write.
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_YAML = "config.yaml"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
TEST_PREDICTIONS = "test_predictions.pt"
LOSS_PLOT = "loss.png"
TSNE_PLOT = "tsne.png"
#: The linear probe of a pretraining run, inside its folder (the ``supcon run`` and sweep layout).
LINEAR_DIR = "linear"
# `supcon run`: one folder per method and a comparison.
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
# The analyses.
ROBUSTNESS_JSON = "robustness.json"
ROBUSTNESS_CSV = "robustness.csv"
ROBUSTNESS_HEATMAP = "robustness_heatmap.png"
ROBUSTNESS_SEVERITY = "robustness_severity.png"
SWEEP_CSV = "sweep.csv"
SWEEP_JSON = "sweep.json"
SWEEP_BOX = "sweep_box.png"
GRADIENTS_JSON = "gradients.json"
GRADIENTS_CSV = "gradients.csv"
GRADIENTS_PLOT = "gradients.png"
# `supcon report`: the Markdown (its images in a folder beside it) and the self-contained HTML.
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPORT_FILES = "report_files"

#: Files whose presence means a folder already holds a training run.
_RUN_MARKERS = (CHECKPOINT_NAME, METRICS_CSV, CONFIG_YAML)


class RunDirError(ValueError):
    """A run directory that already holds a run, asked to start afresh without --overwrite."""


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None], *, fsync: bool = False) -> None:
    """Calls ``write(handle)`` on a temporary file in ``path``'s folder, then renames it to ``path``.

    A crash (or a killed process) mid-write leaves the previous file intact and at most a stray
    ``.<name>.*.tmp`` file, never a truncated one. ``fsync`` flushes the data to disk before the
    rename (checkpoints), so a power cut cannot leave a renamed but empty file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: str | Path, data: Any, *, sort_keys: bool = True) -> None:
    """Writes ``data`` as indented JSON (keys sorted unless ``sort_keys`` is false) to ``path`` atomically."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str))


def write_csv_atomic(path: str | Path, rows: Sequence[Mapping[str, Any]],
                     fieldnames: Sequence[str] | None = None) -> None:
    """Writes ``rows`` as CSV to ``path`` atomically.

    Columns are ``fieldnames`` or, by default, every key in order of first appearance; a row
    without a column leaves its cell empty.
    """
    if fieldnames is None:
        fieldnames = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def holds_run(path: str | Path) -> bool:
    """Whether ``path`` is a folder that already holds a training run."""
    path = Path(path)
    return path.is_dir() and any((path / name).exists() for name in _RUN_MARKERS)


def prepare_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False,
                    is_main: bool = True) -> Path:
    """Creates ``path``; refuses one that already holds a run unless resuming or overwriting.

    Raises:
        RunDirError: both ``resume`` and ``overwrite``; a folder holding a run without either;
            ``resume`` without a checkpoint to resume from.
    """
    path = Path(path)
    if resume and overwrite:
        raise RunDirError("resume and overwrite are mutually exclusive")
    if holds_run(path) and not (resume or overwrite):
        raise RunDirError(
            f"run directory {path} already holds a run: pass --resume to continue it or "
            "--overwrite to replace it")
    if resume and not (path / CHECKPOINT_NAME).is_file():
        raise RunDirError(f"--resume given but {path / CHECKPOINT_NAME} does not exist")
    if is_main:
        if overwrite and path.is_dir():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    return path
