"""The training loop shared by every method: restore, run an epoch, end an epoch.

A method describes itself as a :class:`Task` (the modules it trains, how one batch becomes a loss,
how it is evaluated); :func:`fit` drives it. Every epoch ends with an evaluation, one CSV row and an
atomic checkpoint, so an interrupted run resumed with ``resume=True`` continues to the same numbers
(on CPU, bit for bit).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from supcon import distributed as dist_utils
from supcon.checkpoint import CheckpointError, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from supcon.config import Config, ConfigError, config_to_dict, known_config_values, save_config
from supcon.runfiles import (CHECKPOINT_NAME, CONFIG_YAML, METRICS_CSV, METRICS_JSON, RunDirError, write_csv_atomic,
                             write_json_atomic)
from supcon.train.optim import learning_rate, set_learning_rate
from supcon.train.runtime import Runtime, seed_everything, unwrap
from supcon.train.sampler import EpochSampler, epoch_batches, positive_counts, rank_slices

__all__ = ["Task", "fit", "epoch_batches", "make_sampler", "RESUME_MAY_CHANGE", "resume_changes"]

log = logging.getLogger(__name__)

#: Config keys ``resume`` may change: how long the run trains, and keys that cannot change its
#: numbers (the device: a run may continue on another machine). A change is logged and recorded
#: in config.yaml; any other differing key is refused.
RESUME_MAY_CHANGE: frozenset[str] = frozenset({
    "epochs", "linear_epochs", "ce_epochs", "device", "threads", "download", "progress", "plots", "log_every",
    "tsne_points",
})

#: (images uint8 on the device, labels) -> (loss, extra metrics to average over the epoch).
StepFn = Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]]


@dataclass
class Task:
    """What one method trains and how: the loop in :func:`fit` drives it."""

    kind: str  # the checkpoint kind: "pretrain" | "ce" | "linear"
    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    base_lr: float
    epochs: int
    batch_size: int
    step: StepFn
    evaluate: Callable[[], dict[str, Any]]
    train_images: Tensor
    train_labels: Tensor
    extra_state: Callable[[], dict[str, Any]] | None = None  # saved in the checkpoint
    load_extra_state: Callable[[dict[str, Any]], None] | None = None
    after_step: Callable[[], None] | None = None  # e.g. the momentum-encoder update
    warmup_epochs: float = 0.0
    #: a mean loss above this (or a non-finite one) stops the run: it diverged
    loss_bound: float | None = None
    #: what to change when it diverges, for the error message
    advice: str = "lower --lr or raise --warmup-epochs"
    #: values derived from the config (scaled lr, batch used, warm-up), logged and kept in config.yaml
    effective: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    #: how batches are built (:data:`supcon.train.sampler.SAMPLERS`); None: ``cfg.sampler``
    sampler: str | None = None
    #: views per image, for the positives-per-anchor statistics; None: ``cfg.views``
    views: int | None = None
    #: whether same-label images are the positives (SupCon, CE, probes); SimCLR's are only its own
    #: views, so it logs no positives statistics
    label_positives: bool = True


def _indices_on(batches: list[Tensor], device: torch.device) -> list[Tensor] | tuple[Tensor, ...]:
    """The epoch's index batches on ``device``, copied in one transfer.

    A blocking host-to-device copy ends in ``cudaStreamSynchronize``: one per step (``idx.to(cuda)``)
    would stop the host from queueing the next step while the GPU runs this one. One per epoch is free.
    """
    if not batches or batches[0].device == device:
        return batches
    return torch.cat(batches).to(device).split([len(b) for b in batches])


def resume_changes(stored: Mapping[str, Any], cfg: Config) -> dict[str, tuple[Any, Any]]:
    """``{key: (stored value, value in cfg)}`` for every config key a checkpoint's config and
    ``cfg`` both know and disagree on."""
    current = config_to_dict(cfg)
    return {key: (value, current[key]) for key, value in known_config_values(dict(stored)).items()
            if key in current and value != current[key]}


def _describe(changes: Mapping[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())


def _check_resume_config(task: Task, cfg: Config, run_dir: Path,
                         state: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The settings a resume changes (only :data:`RESUME_MAY_CHANGE` keys; others are refused)."""
    changes = resume_changes(state.get("config", {}), cfg)
    refused = {key: change for key, change in changes.items() if key not in RESUME_MAY_CHANGE}
    if refused:
        raise CheckpointError(
            f"{run_dir / CHECKPOINT_NAME} does not fit this run: --resume with settings that differ from the run's "
            f"({_describe(refused)}); resume with the settings in {run_dir / CONFIG_YAML} (only "
            f"{', '.join(sorted(RESUME_MAY_CHANGE))} may change), or start a new run")
    done = int(state["epoch"])
    if task.epochs < done:
        raise ConfigError(f"--resume asks for {task.epochs} epochs, but {run_dir} has trained {done} already: "
                          f"ask for at least {done}")
    return changes


def _restore(task: Task, cfg: Config, rt: Runtime, run_dir: Path
             ) -> tuple[int, list[dict[str, Any]], dict[str, tuple[Any, Any]]]:
    """Loads the run's checkpoint into the task; returns (epochs done, history, changed settings)."""
    ckpt_path = run_dir / CHECKPOINT_NAME
    state = load_checkpoint(ckpt_path, map_location=rt.device, kind=task.kind)
    changes = _check_resume_config(task, cfg, run_dir, state)
    try:
        for name, module in task.modules.items():
            module.load_state_dict(state["model"][name])
        task.optimizer.load_state_dict(state["optimizer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{ckpt_path} does not fit this run's model or optimizer ({exc.__class__.__name__}: "
            f"{detail}); resume with the settings in {run_dir / CONFIG_YAML}") from None
    if task.load_extra_state is not None:
        task.load_extra_state(state.get("extra", {}))
    start_epoch = int(state["epoch"])
    per_rank = state.get("rng_per_rank")
    if per_rank and len(per_rank) == rt.world_size:
        restore_rng(per_rank[rt.rank])  # every rank continues its own augmentation stream
    else:
        restore_rng(state["rng"])
        if rt.distributed:
            log.warning("checkpoint was written by %s rank(s), this run has %d: reseeding per rank",
                        len(per_rank) if per_rank else 1, rt.world_size)
            seed_everything(cfg.seed + 7_919 * start_epoch, rt.rank)
    log.info("resumed %s from epoch %d", run_dir, start_epoch)
    if changes and rt.is_main:
        log.info("%s resumed with changed settings: %s (recorded in %s)", run_dir, _describe(changes), CONFIG_YAML)
    return start_epoch, list(state.get("history", [])), changes


@dataclass
class _Schedule:
    """Steps of the whole run and the learning rate at each."""

    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    base_lr: float
    kind: str

    def lr(self, step: int) -> float:
        return learning_rate(step, self.total_steps, self.base_lr, self.warmup_steps, self.kind)


def _check_loss(task: Task, loss: float, when: str) -> None:
    """Stops a diverging run: a non-finite loss, or one above the task's bound."""
    name = task.info.get("name", task.kind)
    if not math.isfinite(loss):
        raise FloatingPointError(f"{name}: loss became {loss} at {when}: {task.advice}, or check the data")
    if task.loss_bound is not None and loss > task.loss_bound:
        raise FloatingPointError(
            f"{name}: loss {loss:.4g} at {when} is past {task.loss_bound:.4g}, far above chance: the run "
            f"diverged; {task.advice}")


def make_sampler(task: Task, cfg: Config) -> EpochSampler:
    """The task's batch sampler (``task.sampler``, else ``cfg.sampler``) over its training labels."""
    kind = task.sampler if task.sampler is not None else cfg.sampler
    return EpochSampler(task.train_labels, task.batch_size, kind, cfg.m_per_class, cfg.seed)


def _positive_stats(task: Task, cfg: Config, sampler: EpochSampler, global_batches: Tensor) -> dict[str, Tensor]:
    """The epoch's mean same-class positives per anchor and the share of anchors without one
    (besides their own views), from the global batches: identical on every rank, no host sync."""
    if not task.label_positives:
        return {}
    idx = global_batches.to(task.train_labels.device)
    num_classes = max(1, len(sampler.counts))
    views = task.views if task.views is not None else cfg.views
    mean, none = positive_counts(task.train_labels[idx].long(), num_classes, views)
    return {"positives_per_anchor": mean, "anchors_without_positive": none}


def _run_epoch(task: Task, cfg: Config, rt: Runtime, epoch: int, schedule: _Schedule,
               progress: Any, sampler: EpochSampler) -> dict[str, Any]:
    """Trains one epoch; returns its CSV row before evaluation (loss, lr, speed, extras)."""
    for module in task.modules.values():
        module.train()
    loss_sum = torch.zeros((), device=rt.device)
    extra_sums: dict[str, Tensor] = {}
    t0 = time.perf_counter()
    global_batches = sampler.global_batches(epoch)
    batches = rank_slices(global_batches, rt.rank, rt.world_size)
    stats = _positive_stats(task, cfg, sampler, global_batches)
    image_idx = _indices_on(batches, task.train_images.device)
    label_idx = _indices_on(batches, task.train_labels.device)
    lr = schedule.lr(epoch * schedule.steps_per_epoch)
    for i in range(len(batches)):
        lr = schedule.lr(epoch * schedule.steps_per_epoch + i)
        set_learning_rate(task.optimizer, lr)
        images = task.train_images[image_idx[i]].to(rt.device, non_blocking=True)
        labels = task.train_labels[label_idx[i]].to(rt.device, non_blocking=True)
        loss, extras = task.step(images, labels)
        task.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        task.optimizer.step()
        if task.after_step is not None:
            task.after_step()
        loss_sum += loss.detach()
        for key, value in extras.items():
            extra_sums[key] = extra_sums.get(key, 0) + value.detach()
        checkpoint_step = i == 0 or (i + 1) % cfg.log_every == 0 or i + 1 == len(batches)
        if checkpoint_step:  # one host sync every log_every steps
            _check_loss(task, float(loss.detach()), f"step {i + 1} of epoch {epoch + 1}")
        if progress is not None:
            progress.update(1)
            if checkpoint_step:
                progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}", lr=f"{lr:.3g}")
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
    elapsed = time.perf_counter() - t0
    if rt.distributed:  # global means, identical on every rank (so is the NaN check below)
        loss_sum = dist_utils.all_reduce_mean(loss_sum)
        extra_sums = {k: dist_utils.all_reduce_mean(torch.as_tensor(v, device=rt.device))
                      for k, v in extra_sums.items()}
    mean_loss = float(loss_sum) / len(batches)
    _check_loss(task, mean_loss, f"epoch {epoch + 1}")
    row: dict[str, Any] = {"epoch": epoch + 1, "loss": mean_loss, "lr": lr,
                           "images_per_s": len(batches) * task.batch_size / max(elapsed, 1e-9),
                           "seconds": elapsed}
    row.update({key: float(value) / len(batches) for key, value in extra_sums.items()})
    row.update({key: float(value) for key, value in stats.items()})
    return row


def _end_epoch(task: Task, cfg: Config, rt: Runtime, run_dir: Path, row: dict[str, Any],
               history: list[dict[str, Any]], checkpoint_extra: dict[str, Any] | None) -> None:
    """Evaluates, appends the epoch's row, and (rank 0) writes the checkpoint and the CSV."""
    for module in task.modules.values():
        module.eval()
    row.update(task.evaluate())
    history.append(row)
    rng_per_rank = dist_utils.all_gather_object(capture_rng()) if rt.distributed else None
    if rt.is_main:
        state = {
            "kind": task.kind,
            "epoch": row["epoch"],
            "config": config_to_dict(cfg),
            "model": {name: unwrap(m).state_dict() for name, m in task.modules.items()},
            "optimizer": task.optimizer.state_dict(),
            "extra": task.extra_state() if task.extra_state is not None else {},
            "rng": capture_rng(),
            **({"rng_per_rank": rng_per_rank} if rng_per_rank else {}),
            "history": history,
            **(checkpoint_extra or {}),
        }
        try:
            save_checkpoint(state, run_dir / CHECKPOINT_NAME)
            write_csv_atomic(run_dir / METRICS_CSV, history)
        except OSError as exc:  # a disk that filled up (or went read-only) during the run
            raise RunDirError(f"cannot write to run directory {run_dir} after epoch {row['epoch']}: "
                              f"{exc.strerror or exc}; the last complete checkpoint is kept (--resume "
                              "continues from it)") from None
    dist_utils.barrier()


def fit(task: Task, cfg: Config, rt: Runtime, run_dir: Path, *, resume: bool = False,
        checkpoint_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training loop. Returns the final metrics (also written to metrics.json)."""
    # Checked before config.yaml is written, so a too-large batch leaves no half-made run behind.
    if task.batch_size % rt.world_size:
        raise ConfigError(f"batch_size ({task.batch_size}) must be divisible by the world size ({rt.world_size})")
    sampler = make_sampler(task, cfg)
    steps_per_epoch = sampler.steps
    start_epoch, history, changes = 0, [], {}
    if resume:
        start_epoch, history, changes = _restore(task, cfg, rt, run_dir)
    if rt.is_main and (not resume or changes):
        save_config(cfg, run_dir / CONFIG_YAML, effective=task.effective)
    if rt.is_main and task.effective:
        log.info("%s: %s", task.info.get("name", task.kind), ", ".join(f"{k} {v}" for k, v in task.effective.items()))
    total_steps = steps_per_epoch * task.epochs
    warmup_steps = int(round(task.warmup_epochs * steps_per_epoch))
    schedule = _Schedule(steps_per_epoch, total_steps, warmup_steps, task.base_lr, cfg.schedule)
    progress = None
    # A bar on a terminal; a redirected log gets one plain line per epoch instead.
    bar = cfg.progress and rt.is_main and sys.stderr.isatty()
    if bar:
        progress = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch,
                        desc=f"{task.info.get('name', task.kind)}", leave=False, dynamic_ncols=True)
    for epoch in range(start_epoch, task.epochs):
        row = _run_epoch(task, cfg, rt, epoch, schedule, progress, sampler)
        _end_epoch(task, cfg, rt, run_dir, row, history, checkpoint_extra)
        if cfg.progress and rt.is_main and not bar:
            log.info("%s epoch %d/%d: %s", task.info.get("name", task.kind), epoch + 1, task.epochs,
                     ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
    if progress is not None:
        progress.close()
    final = dict(history[-1]) if history else {}
    final["epochs"] = task.epochs
    final["total_seconds"] = sum(r["seconds"] for r in history)
    if rt.is_main:
        write_json_atomic(run_dir / METRICS_JSON, final)
    return final
