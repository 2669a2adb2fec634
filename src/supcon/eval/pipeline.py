"""Train a method and probe it: the one path `supcon run` and `supcon sweep` share.

SupCon and SimCLR pretrain an encoder into ``run_dir`` and train a linear probe on it into
``run_dir/linear``; the cross-entropy baseline trains end to end into ``run_dir`` and is scored by
its own classifier on the same test split.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from supcon.checkpoint import load_checkpoint
from supcon.config import RUN_METHODS, Config, ConfigError
from supcon.data import DataSplits, load_splits
from supcon.runfiles import CHECKPOINT_NAME, LINEAR_DIR, SUMMARY_JSON, claim_run_dir, remove_run, write_json_atomic
from supcon.train.callbacks import TrainCallback
from supcon.train.methods import METHODS, method_config
from supcon.train.methods.common import run_inputs

__all__ = ["train_and_probe", "run_methods", "check_methods", "launched_as_rank_zero", "RUN_PARTS", "METHOD_PARTS"]

#: The nested runs of one method's folder: the linear probe of a pretrained encoder.
METHOD_PARTS: tuple[str, ...] = (LINEAR_DIR,)
#: The nested runs of a `supcon run` folder: one folder per method, and its probe.
RUN_PARTS: tuple[str, ...] = tuple(part for m in RUN_METHODS for part in (m, f"{m}/{LINEAR_DIR}"))


def check_methods(methods: Sequence[str], flag: str = "--methods") -> list[str]:
    """``methods`` without repeats, each one of :data:`supcon.config.RUN_METHODS`.

    Raises:
        ConfigError: an empty list or an unknown entry, naming ``flag``.
    """
    unknown = sorted(set(methods) - set(RUN_METHODS))
    if unknown or not methods:
        raise ConfigError(f"{flag} must be a non-empty subset of {', '.join(RUN_METHODS)}, "
                          f"got {list(methods)}" + (f" (unknown: {unknown})" if unknown else ""))
    return list(dict.fromkeys(methods))


def _resumable(run_dir: Path, resume: bool) -> bool:
    return resume and (run_dir / CHECKPOINT_NAME).exists()


def _probe_is_stale(probe_dir: Path, encoder_checkpoint: Path) -> bool:
    """Whether the probe in ``probe_dir`` began on an earlier epoch of the encoder than it holds now
    (its pretraining was resumed for more epochs): such a probe starts afresh."""
    began = load_checkpoint(probe_dir / CHECKPOINT_NAME, kind="linear").get("source_epoch")
    return began is not None and began != load_checkpoint(encoder_checkpoint).get("epoch")


def train_and_probe(method: str, cfg: Config, run_dir: Path, *, resume: bool = False, overwrite: bool = False,
                    data: DataSplits | None = None, callbacks: Sequence[TrainCallback] = (),
                    inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Trains ``method`` (a :data:`supcon.config.RUN_METHODS` entry) into ``run_dir`` and scores it.

    Each stage resumes only where its checkpoint exists (``resume``) and starts afresh otherwise;
    a probe begun on an encoder that has trained on since starts afresh. ``overwrite`` first
    removes the run in ``run_dir`` and its probe (:data:`METHOD_PARTS`), never what is not
    supcon's nor ``inputs`` (files the run reads besides its dataset, e.g. the --config file).

    Returns:
        ``{"accuracy": linear-probe (or CE) top-1 on the test split, "knn_acc": kNN top-1 of the
        encoder (rank 0 only), "seconds": wall time}``.
    """
    check_methods([method], "method")
    run_dir = Path(run_dir)
    t0 = time.perf_counter()
    entry = METHODS[method]
    mcfg = method_config(cfg, method)
    if overwrite and launched_as_rank_zero():
        remove_run(run_dir, parts=METHOD_PARTS, inputs=run_inputs(mcfg, *inputs))
    trained = entry.train(mcfg, run_dir, resume=_resumable(run_dir, resume), overwrite=overwrite, data=data,
                          callbacks=callbacks, inputs=inputs)
    if entry.stage == "classifier":
        accuracy = trained["test_acc"]
    else:
        probe_dir = run_dir / LINEAR_DIR
        found = _resumable(probe_dir, resume)
        stale = found and _probe_is_stale(probe_dir, run_dir / CHECKPOINT_NAME)
        probe = METHODS["linear"].train(mcfg, run_dir / CHECKPOINT_NAME, probe_dir, resume=found and not stale,
                                        overwrite=overwrite or stale, data=data, callbacks=callbacks, inputs=inputs)
        accuracy = probe["test_acc"]
    return {"accuracy": accuracy, "knn_acc": trained.get("knn_acc"), "seconds": time.perf_counter() - t0}


def launched_as_rank_zero() -> bool:
    """Rank 0 of a torchrun launch (or no launcher), known before any process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def run_methods(cfg: Config, out: str | Path, methods: Sequence[str], *, resume: bool = False,
                overwrite: bool = False, callbacks: Sequence[TrainCallback] = (),
                inputs: Sequence[str | Path] = ()) -> dict[str, dict[str, Any]]:
    """Every method of ``methods`` (SupCon, SimCLR, CE) at the same budget, one folder each in ``out``.

    ``out`` is locked for the whole run (each stage locks its own folder too); ``overwrite``
    replaces the runs of :data:`RUN_PARTS` in it and nothing that is not supcon's, and refuses an
    ``out`` that is or holds the dataset or ``inputs`` (e.g. the --config file). Writes
    ``out/summary.json``: per method its linear-probe (CE: its own) test accuracy ``linear_acc``,
    the encoder's ``knn_acc`` and the wall time ``seconds``.
    """
    methods = check_methods(methods)
    out = Path(out)
    # Before any process group exists: torchrun's RANK says who owns the folder (rank 0 alone
    # locks it and deletes under --overwrite); each stage below re-checks and locks its own run dir.
    is_main = launched_as_rank_zero()
    with claim_run_dir(out, "run", resume=resume, overwrite=overwrite, inputs=run_inputs(cfg, *inputs),
                       parts=RUN_PARTS, is_main=is_main):
        data = load_splits(cfg)
        results: dict[str, dict[str, Any]] = {}
        # kNN accuracy and the summary come from rank 0 (the only rank that evaluates after training).
        for method in methods:
            r = train_and_probe(method, cfg, out / method, resume=resume, data=data, callbacks=callbacks,
                                inputs=inputs)
            results[method] = {"linear_acc": r["accuracy"], "knn_acc": r["knn_acc"], "seconds": r["seconds"]}
        if is_main:
            write_json_atomic(out / SUMMARY_JSON, results, sort_keys=False)  # in the order run
    return results
