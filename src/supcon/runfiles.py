"""What a run folder holds: the file names, atomic writers, and the rules for starting a run there.

Every command writes its results through these names, and :mod:`supcon.report` reads them back by
the same names, so a file is named in exactly one place. Writers go to a temporary file in the same
folder and ``os.replace`` it, so a reader never sees half a file and a killed run leaves the last
complete version behind.

A run claims its folder with :func:`claim_run_dir` for as long as it runs: an exclusive lock
(:data:`RUN_LOCK`, ``fcntl.flock``: the kernel drops it when the process dies, so a killed run leaves
no stale lock) and a marker (:data:`RUN_MARKER`) saying the folder is a supcon run of a kind.
``--overwrite`` deletes only what supcon wrote (:data:`RUN_FILES`, its temp files, and the nested
runs the folder's layout makes: ``parts``), never a folder that is not a supcon run, never one that
holds an input of the run, and never while another run holds the folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO

from supcon.pidlock import LockHeld, PidLock

__all__ = [
    "CHECKPOINT_NAME", "CONFIG_YAML", "METRICS_CSV", "METRICS_JSON", "TEST_PREDICTIONS", "LOSS_PLOT",
    "TSNE_PLOT", "SUMMARY_JSON", "SUMMARY_MD", "ROBUSTNESS_JSON", "ROBUSTNESS_CSV", "ROBUSTNESS_HEATMAP",
    "ROBUSTNESS_SEVERITY", "SWEEP_CSV", "SWEEP_JSON", "SWEEP_BOX", "GRADIENTS_JSON", "GRADIENTS_CSV",
    "GRADIENTS_PLOT", "REPORT_MD", "REPORT_HTML", "REPORT_FILES", "LINEAR_DIR", "RUN_MARKER", "RUN_LOCK",
    "RUN_FILES", "RunDirError", "write_atomic", "write_text_atomic", "write_json_atomic",
    "write_csv_atomic", "holds_run", "run_kind", "is_own_temp_file", "claim_run_dir", "prepare_run_dir",
    "remove_run",
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

#: The marker of a run folder: JSON ``{"format": "supcon-run", "kind": ..., "parts": [...], ...}``.
RUN_MARKER = ".supcon-run.json"
#: The lock file a live run holds (``fcntl.flock``) and that names its pid.
RUN_LOCK = ".supcon.lock"
_MARKER_FORMAT = "supcon-run"
_PROBE_PREFIX = ".supcon-probe."
_PROBE_BYTES = 1 << 20  # what the writability check writes (and fsyncs) before a run starts

#: Every file a run writes in its own folder (training runs, ``supcon run``, sweeps): what
#: ``--overwrite`` deletes, with their ``.<name>.*.tmp`` leftovers.
RUN_FILES: frozenset[str] = frozenset({
    CHECKPOINT_NAME, CONFIG_YAML, METRICS_CSV, METRICS_JSON, TEST_PREDICTIONS, LOSS_PLOT, TSNE_PLOT,
    SUMMARY_JSON, SUMMARY_MD, SWEEP_CSV, SWEEP_JSON, SWEEP_BOX, RUN_MARKER,
})
#: Files whose presence means a folder already holds a training run.
_RUN_MARKERS = (CHECKPOINT_NAME, METRICS_CSV, CONFIG_YAML)
#: ... a sweep (a ``supcon run`` folder is never refused as a whole: its stages are).
_HOLDS = {"sweep": (SWEEP_CSV,), "run": ()}
#: The kind of a training run that does not say which (folders of older versions, prepare_run_dir).
_GENERIC = "training"


class RunDirError(ValueError):
    """A run directory that cannot be used as asked: it holds a run (and neither --resume nor
    --overwrite was given), another run is using it, it cannot be written, or --overwrite would
    delete what is not supcon's."""


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


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / RUN_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _MARKER_FORMAT else None


def run_kind(path: str | Path) -> str | None:
    """The kind of supcon run folder ``path`` is (``"pretrain"``, ``"ce"``, ``"linear"``, ``"run"``,
    ``"sweep"``), or None when it is not one.

    The marker says it. A folder written before markers existed counts by its files: ``sweep.csv``
    (a sweep), ``summary.json`` (a ``supcon run``), ``config.yaml`` with ``metrics.csv`` or
    ``checkpoint.pt``, or alone (a run killed before its first epoch): a training run, ``"training"``.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    marker = _read_marker(path)
    if marker is not None:
        return str(marker.get("kind"))
    if (path / SWEEP_CSV).is_file():
        return "sweep"
    if (path / SUMMARY_JSON).is_file():
        return "run"
    if (path / CONFIG_YAML).is_file():
        others = [e.name for e in path.iterdir()
                  if e.name not in (CONFIG_YAML, RUN_LOCK) and not is_own_temp_file(e.name)]
        if not others or METRICS_CSV in others or CHECKPOINT_NAME in others:  # alone: killed before epoch 1
            return _GENERIC
    return None


def is_own_temp_file(name: str) -> bool:
    """Whether ``name`` is what :func:`write_atomic` leaves of a run file when killed mid-write
    (``.checkpoint.pt.*.tmp``...), or a leftover of the writability check."""
    if name.startswith(_PROBE_PREFIX):
        return True
    return name.endswith(".tmp") and any(name.startswith(f".{own}.") for own in RUN_FILES)


def _remove_temp_files(folder: Path) -> None:
    """Deletes what killed writes left in ``folder`` (its lock is held: no live write can be hit)."""
    for entry in folder.iterdir():
        if is_own_temp_file(entry.name) and not entry.is_dir():
            entry.unlink(missing_ok=True)


def _lock_error(folder: Path, exc: Exception) -> RunDirError:
    if isinstance(exc, LockHeld):
        return RunDirError(f"another supcon run (pid {exc.pid}) is using {folder}: wait for it to finish, or "
                           "choose another --out")
    return RunDirError(f"cannot lock {folder / RUN_LOCK}: {getattr(exc, 'strerror', None) or exc}")


@contextmanager
def _run_lock(folder: Path) -> Iterator[None]:
    """Holds the lock of a run folder (:data:`RUN_LOCK`) for the block."""
    lock = PidLock(folder / RUN_LOCK)
    try:
        lock.acquire()
    except (LockHeld, OSError) as exc:
        raise _lock_error(folder, exc) from None
    try:
        yield
    finally:
        lock.release()


def _check_free(folder: Path) -> None:
    """Names the live run that holds ``folder``, if one does (taking nothing)."""
    try:
        PidLock(folder / RUN_LOCK).check_free()
    except LockHeld as exc:
        raise _lock_error(folder, exc) from None


def _check_request(path: Path, kind: str, resume: bool, overwrite: bool) -> None:
    """The rules that need neither the lock nor a write: the flags against what the folder holds."""
    if resume and overwrite:
        raise RunDirError("resume and overwrite are mutually exclusive")
    if resume or overwrite:
        if resume and kind not in _HOLDS and not (path / CHECKPOINT_NAME).is_file():
            raise RunDirError(f"--resume given but {path / CHECKPOINT_NAME} does not exist")
        return
    if path.is_dir() and any((path / name).exists() for name in _HOLDS.get(kind, _RUN_MARKERS)):
        raise RunDirError(f"run directory {path} already holds a {'sweep' if kind == 'sweep' else 'run'}: "
                          "pass --resume to continue it or --overwrite to replace it")
    marker = _read_marker(path) if path.is_dir() else None
    if marker is not None and _GENERIC not in (kind, marker.get("kind")) and marker.get("kind") != kind:
        raise RunDirError(f"run directory {path} holds a supcon {marker.get('kind')} folder, not a {kind} run: "
                          "choose another --out, or pass --overwrite to replace it")


def _absolute_forms(path: Path) -> set[Path]:
    path = path.expanduser()
    return {Path(os.path.abspath(path)), path.resolve()}


def _check_overwrite(path: Path, inputs: Sequence[str | Path]) -> None:
    """--overwrite replaces a supcon run (or an empty folder) that holds none of the run's inputs."""
    if not path.is_dir():
        return
    tops = _absolute_forms(path)
    for item in inputs:
        for form in _absolute_forms(Path(item)):
            for top in tops:
                if form == top or top in form.parents:
                    raise RunDirError(f"--out {path} {'is' if form == top else 'holds'} {item}, an input of this "
                                      "run: --overwrite would delete it; choose another --out")
    if run_kind(path) is None:
        entries = sorted(e.name for e in path.iterdir() if e.name != RUN_LOCK and not is_own_temp_file(e.name))
        if entries:
            raise RunDirError(f"--overwrite refuses {path}: it is not a supcon run folder (no {RUN_MARKER}, no "
                              f"run files) and holds {len(entries)} entries ({', '.join(entries[:3])}"
                              f"{', ...' if len(entries) > 3 else ''}); choose another --out or empty it yourself")


def _check_writable(path: Path) -> None:
    """Creates ``path`` and writes (and fsyncs) a probe file in it: a read-only or full disk fails
    here, before anything trains."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"run directory {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=path)
        try:
            os.write(fd, bytes(_PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise RunDirError(f"cannot write to run directory {path}: {exc.strerror or exc}") from None


def _matches(rel: tuple[str, ...], patterns: Sequence[str], *, above: bool = False) -> bool:
    """Whether folder ``rel`` (its names below the top) is one of ``patterns`` (``/``-separated,
    ``*`` for any name) or, with ``above``, a folder on the way to one."""
    for pattern in patterns:
        pieces = pattern.split("/")
        if (len(pieces) > len(rel) if above else len(pieces) == len(rel)) and all(
                fnmatchcase(name, piece) for name, piece in zip(rel, pieces)):
            return True
    return False


def _removal_plan(top: Path, patterns: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """What --overwrite deletes: (run files, nested folders to remove once emptied, deepest first).

    Raises:
        RunDirError: a nested supcon run that is not one of ``patterns`` (a run of its own).
    """
    files: list[Path] = []
    folders: list[Path] = []

    def visit(folder: Path, rel: tuple[str, ...], own: bool) -> None:
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                sub = (*rel, entry.name)
                part = _matches(sub, patterns)
                kind = run_kind(entry)
                if kind is not None and not part:
                    raise RunDirError(f"--overwrite refuses {top}: {entry} is a supcon {kind} run of its own, not "
                                      "part of this one; move or delete it yourself, or choose another --out")
                if part or _matches(sub, patterns, above=True):
                    visit(entry, sub, part)
                    folders.append(entry)
            elif own and (entry.name in RUN_FILES or is_own_temp_file(entry.name)):
                files.append(entry)

    visit(top, (), True)
    return files, folders


def _remove_run_files(top: Path, parts: Sequence[str]) -> None:
    """Deletes the run files of ``top`` (its lock is held) and its nested runs: ``parts`` and those
    its marker records; each nested run's lock is taken before anything is deleted. Other files stay."""
    recorded = (_read_marker(top) or {}).get("parts", [])
    patterns = [*(str(p) for p in recorded if isinstance(recorded, list)), *parts]
    files, folders = _removal_plan(top, patterns)
    with ExitStack() as nested:
        for folder in folders:
            nested.enter_context(_run_lock(folder))
        for file in files:
            file.unlink(missing_ok=True)
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # it holds files that are not supcon's: they stay
            pass


def _write_marker(path: Path, kind: str, parts: Sequence[str]) -> None:
    old = _read_marker(path) or {}
    recorded = old.get("parts") if old.get("kind") == kind and isinstance(old.get("parts"), list) else []
    write_json_atomic(path / RUN_MARKER, {
        "format": _MARKER_FORMAT, "kind": kind, "parts": list(dict.fromkeys([*recorded, *parts])),
        "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"), "pid": os.getpid(),
    })


@contextmanager
def claim_run_dir(path: str | Path, kind: str, *, resume: bool = False, overwrite: bool = False,
                  inputs: Sequence[str | Path] = (), parts: Sequence[str] = (), is_main: bool = True) -> Iterator[Path]:
    """Holds ``path`` for a run of ``kind`` (``pretrain``, ``ce``, ``linear``, ``run``, ``sweep``) for
    the ``with`` block.

    In order: the flags against what the folder holds; then, on the main process only (``is_main``;
    torchrun's other ranks only check the flags), under ``overwrite`` that the folder is a supcon
    run (or empty) and neither is nor holds one of ``inputs`` (dataset, checkpoint, config file),
    that the folder can be written, the lock, and only then the deletion (``overwrite``: the
    :data:`RUN_FILES`, their temp files and the nested runs of ``parts``, folder patterns such as
    ``"*/linear"``, or of those the folder's marker records), the marker, and stale temp files.
    Stale temp files are removed again when the block ends.

    Raises:
        RunDirError: both ``resume`` and ``overwrite``; a folder holding a run without either;
            ``resume`` of a training run without a checkpoint; a folder of another kind; one that
            cannot be written; one another run holds; an ``overwrite`` that would delete what is
            not supcon's (a folder that is not a run, an input, a nested run of its own).
    """
    path = Path(path)
    if is_main:
        _check_free(path)  # a live run is named first, whatever else is wrong
    _check_request(path, kind, resume, overwrite)
    if not is_main:  # rank 0 may be deleting under --overwrite: the other ranks only check the flags
        yield path
        return
    if overwrite:
        _check_overwrite(path, inputs)
    _check_writable(path)
    with _run_lock(path):
        if overwrite:
            _remove_run_files(path, parts)
        _write_marker(path, kind, parts)
        _remove_temp_files(path)
        try:
            yield path
        finally:
            _remove_temp_files(path)


def prepare_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False, is_main: bool = True,
                    kind: str = _GENERIC, inputs: Sequence[str | Path] = ()) -> Path:
    """:func:`claim_run_dir` for a moment: checks, deletes (``overwrite``) and marks ``path``, and
    returns it unlocked."""
    with claim_run_dir(path, kind, resume=resume, overwrite=overwrite, inputs=inputs, is_main=is_main) as claimed:
        return claimed


def remove_run(path: str | Path, *, parts: Sequence[str] = (), inputs: Sequence[str | Path] = ()) -> None:
    """What ``--overwrite`` deletes from the run in ``path``, under its lock (nothing when it does not
    exist): its run files and the nested runs of ``parts``. The folder, the files that are not
    supcon's and a marker (so that the run replacing it may claim it with ``overwrite``) stay.

    Raises:
        RunDirError: as :func:`claim_run_dir` under ``overwrite``.
    """
    path = Path(path)
    if not path.is_dir():
        return
    _check_overwrite(path, inputs)
    with _run_lock(path):
        kind = run_kind(path)
        _remove_run_files(path, parts)
        if kind is not None:
            _write_marker(path, kind, ())
