"""One training loop for every method: SupCon, SimCLR, cross-entropy, linear probe, fine-tune.

The data flow is one way: uint8 images held in memory (on the GPU when they fit) -> a batch of
indices -> batched augmentation on the device (n views) -> encoder -> head -> loss -> optimizer.
Every epoch ends with an evaluation, one CSV row, and an atomic checkpoint, so an interrupted
run resumed with ``resume=True`` continues to the same numbers (on CPU, bit for bit).

A method is a :class:`Task`: the modules it trains, how one batch becomes a loss, and how it is
evaluated. :func:`fit` is the loop; :func:`pretrain`, :func:`train_ce` and :func:`train_linear`
build the task and call it.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon import distributed as dist_utils
from supcon.augment import Normalize, build_augmentation, make_views, to_float_images
from supcon.config import Config, ConfigError, config_to_dict, save_config
from supcon.data import ImageDataset, label_fraction_subset, load_dataset, normalization_stats
from supcon.losses import SupConLoss
from supcon.models import CEModel, LinearClassifier, SupConModel, build_encoder, model_signature
from supcon.train.checkpoint import (CheckpointError, capture_rng, load_checkpoint, restore_rng,
                                     save_checkpoint, write_csv_atomic, write_text_atomic)
from supcon.train.optim import build_optimizer, learning_rate, set_learning_rate

__all__ = ["RunDirError", "Runtime", "prepare_run_dir", "setup_runtime", "load_data", "pretrain",
           "train_ce", "train_linear", "fit", "Task", "encoder_from_checkpoint", "extract_features",
           "evaluate_classifier", "CHECKPOINT_NAME"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"


class RunDirError(ValueError):
    """A run directory that already holds a run, asked to start afresh without --overwrite."""


# ---------------------------------------------------------------------------------------------
# Runtime: device, precision, process group
# ---------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """Where and how a run computes."""

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(cfg: Config) -> Runtime:
    """Resolves the device and precision, and joins the process group under torchrun."""
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    rank, world_size, local_rank = dist_utils.init_from_env(cfg.device)
    if cfg.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    elif cfg.device == "cuda" and world_size > 1:
        device = torch.device(f"cuda:{local_rank}")
    else:
        device = torch.device(cfg.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {cfg.device!r} asked for, but CUDA is not available")
        if device.index is None:  # torch.cuda.set_device refuses a bare "cuda"
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    amp = None
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        amp = torch.bfloat16
    return Runtime(device=device, amp_dtype=amp, rank=rank, world_size=world_size)


def seed_everything(seed: int, rank: int = 0) -> None:
    """Seeds the global RNGs; every rank gets its own stream (augmentations differ per rank)."""
    torch.manual_seed(seed + 1_000_003 * rank)


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------


def prepare_run_dir(path: str | Path, *, resume: bool = False, overwrite: bool = False,
                    is_main: bool = True) -> Path:
    """Creates ``path``; refuses one that already holds a run unless resuming or overwriting."""
    path = Path(path)
    holds_run = path.is_dir() and any(
        (path / name).exists() for name in (CHECKPOINT_NAME, METRICS_CSV, "config.yaml"))
    if resume and overwrite:
        raise RunDirError("resume and overwrite are mutually exclusive")
    if holds_run and not (resume or overwrite):
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


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """Rewrites the per-epoch CSV atomically from the history kept in the checkpoint."""
    if rows:
        write_csv_atomic(path, rows)


def _write_json(data: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


@dataclass
class Data:
    """Train and test splits as uint8 tensors, plus the training split's normalisation."""

    train: ImageDataset
    test: ImageDataset
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> int:
        return self.train.image_size


def load_data(cfg: Config) -> Data:
    """Loads both splits; the normalisation statistics come from the training split only."""
    train = load_dataset(cfg.dataset, "train", image_size=cfg.image_size, download=cfg.download,
                         seed=cfg.seed, test_fraction=cfg.test_fraction)
    test = load_dataset(cfg.dataset, "test", image_size=cfg.image_size, download=False,
                        seed=cfg.seed, test_fraction=cfg.test_fraction)
    if cfg.label_fraction is not None and cfg.label_fraction < 1:
        train = label_fraction_subset(train, cfg.label_fraction, seed=cfg.seed)
    mean, std = normalization_stats(train.images)
    return Data(train=train, test=test, mean=mean, std=std)


def _place(images: Tensor, device: torch.device) -> Tensor:
    """Puts the uint8 dataset on the GPU when it fits comfortably, else keeps it (pinned) on CPU."""
    if device.type != "cuda":
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() < 0.25 * free:
        return images.to(device, non_blocking=True)
    return images.pin_memory()


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0,
                  world_size: int = 1, drop_last: bool = True, shuffle: bool = True) -> list[Tensor]:
    """Index batches for one epoch: a permutation seeded by (seed, epoch), split across ranks.

    ``batch_size`` is the global batch; each rank gets its contiguous ``batch_size / world``
    slice of every global batch. Reshuffles every epoch; identical on every rank.
    """
    if batch_size % world_size:
        raise ConfigError(f"batch_size ({batch_size}) must be divisible by the world size ({world_size})")
    if shuffle:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(n, generator=gen)
    else:
        order = torch.arange(n)
    if drop_last:
        if n < batch_size:
            raise ConfigError(
                f"batch_size ({batch_size}) is larger than the training set ({n} images): "
                "lower --batch-size")
        order = order[: n - n % batch_size]
    per_rank = batch_size // world_size
    batches = []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        batches.append(chunk[rank * per_rank:(rank + 1) * per_rank] if drop_last else chunk)
    return batches


# ---------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------


@dataclass
class Task:
    """What one method trains and how: the loop in :func:`fit` drives it."""

    kind: str  # "pretrain" | "ce" | "linear"
    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    base_lr: float
    epochs: int
    batch_size: int
    step: Any  # (images uint8 on device, labels) -> (loss Tensor, extra metric Tensors)
    evaluate: Any  # () -> dict of floats
    train_images: Tensor
    train_labels: Tensor
    extra_state: Any = None  # () -> dict, saved in the checkpoint
    load_extra_state: Any = None  # (dict) -> None
    after_step: Any = None  # () -> None, e.g. momentum-encoder update
    info: dict[str, Any] = field(default_factory=dict)


def fit(task: Task, cfg: Config, rt: Runtime, run_dir: Path, *, resume: bool = False,
        checkpoint_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training loop. Returns the final metrics (also written to metrics.json)."""
    ckpt_path = run_dir / CHECKPOINT_NAME
    history: list[dict[str, Any]] = []
    start_epoch = 0
    # Checked before config.yaml is written, so a too-large batch leaves no half-made run behind.
    n_train = task.train_images.shape[0]
    steps_per_epoch = len(epoch_batches(n_train, task.batch_size, 0, cfg.seed, rt.rank, rt.world_size))
    if resume:
        state = load_checkpoint(ckpt_path, map_location=rt.device, kind=task.kind)
        try:
            for name, module in task.modules.items():
                module.load_state_dict(state["model"][name])
            task.optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:300]
            raise CheckpointError(
                f"{ckpt_path} does not fit this run's model or optimizer ({exc.__class__.__name__}: "
                f"{detail}); resume with the settings in {run_dir / 'config.yaml'}") from None
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
        history = list(state.get("history", []))
        log.info("resumed %s from epoch %d", run_dir, start_epoch)
    elif rt.is_main:
        save_config(cfg, run_dir / "config.yaml")

    total_steps = steps_per_epoch * task.epochs
    warmup_steps = int(round(cfg.warmup_epochs * steps_per_epoch)) if task.kind != "linear" else 0
    progress = None
    if cfg.progress and rt.is_main:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch,
                        desc=f"{task.info.get('name', task.kind)}", leave=False, dynamic_ncols=True)
    for epoch in range(start_epoch, task.epochs):
        for module in task.modules.values():
            module.train()
        loss_sum = torch.zeros((), device=rt.device)
        extra_sums: dict[str, Tensor] = {}
        t0 = time.perf_counter()
        batches = epoch_batches(n_train, task.batch_size, epoch, cfg.seed, rt.rank, rt.world_size)
        image_idx = _indices_on(batches, task.train_images.device)
        label_idx = _indices_on(batches, task.train_labels.device)
        for i in range(len(batches)):
            step = epoch * steps_per_epoch + i
            lr = learning_rate(step, total_steps, task.base_lr, warmup_steps, cfg.schedule)
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
            if progress is not None:
                progress.update(1)
                if (i + 1) % cfg.log_every == 0 or i + 1 == len(batches):
                    progress.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.4f}", lr=f"{lr:.3g}")
        if rt.device.type == "cuda":
            torch.cuda.synchronize(rt.device)
        elapsed = time.perf_counter() - t0
        if rt.distributed:  # global means, identical on every rank (so is the NaN check below)
            loss_sum = dist_utils.all_reduce_mean(loss_sum)
            extra_sums = {k: dist_utils.all_reduce_mean(torch.as_tensor(v, device=rt.device))
                          for k, v in extra_sums.items()}
        mean_loss = float(loss_sum) / len(batches)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(
                f"loss became {mean_loss} in epoch {epoch + 1}: lower --lr or check the data")
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "lr": lr,
            "images_per_s": len(batches) * task.batch_size / max(elapsed, 1e-9),
            "seconds": elapsed,
        }
        for key, value in extra_sums.items():
            row[key] = float(value) / len(batches)
        for module in task.modules.values():
            module.eval()
        row.update(task.evaluate())
        history.append(row)
        rng_per_rank = dist_utils.all_gather_object(capture_rng()) if rt.distributed else None
        if rt.is_main:
            state = {
                "kind": task.kind,
                "epoch": epoch + 1,
                "config": config_to_dict(cfg),
                "model": {name: _unwrap(m).state_dict() for name, m in task.modules.items()},
                "optimizer": task.optimizer.state_dict(),
                "extra": task.extra_state() if task.extra_state is not None else {},
                "rng": capture_rng(),
                **({"rng_per_rank": rng_per_rank} if rng_per_rank else {}),
                "history": history,
                **(checkpoint_extra or {}),
            }
            save_checkpoint(state, ckpt_path)
            _write_csv(history, run_dir / METRICS_CSV)
        dist_utils.barrier()
    if progress is not None:
        progress.close()
    final = dict(history[-1]) if history else {}
    final["epochs"] = task.epochs
    final["total_seconds"] = sum(r["seconds"] for r in history)
    if rt.is_main:
        _write_json(final, run_dir / METRICS_JSON)
    return final


def _indices_on(batches: list[Tensor], device: torch.device) -> list[Tensor] | tuple[Tensor, ...]:
    """The epoch's index batches on ``device``, copied in one transfer.

    A blocking host-to-device copy ends in ``cudaStreamSynchronize``: one per step (``idx.to(cuda)``)
    would stop the host from queueing the next step while the GPU runs this one. One per epoch is free.
    """
    if not batches or batches[0].device == device:
        return batches
    return torch.cat(batches).to(device).split([len(b) for b in batches])


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers."""
    while True:
        if hasattr(module, "_orig_mod"):
            module = module._orig_mod
        elif isinstance(module, nn.parallel.DistributedDataParallel):
            module = module.module
        else:
            return module


def _autocast(rt: Runtime):
    if rt.amp_dtype is None:
        return torch.autocast(rt.device.type, enabled=False)
    return torch.autocast(rt.device.type, dtype=rt.amp_dtype)


def _loss_chunk(cfg: Config) -> int | str | None:
    if cfg.loss_chunk == "dense":
        return None
    if cfg.loss_chunk == "auto":
        return "auto"
    return int(cfg.loss_chunk)


def _prepare_model(model: nn.Module, cfg: Config, rt: Runtime) -> nn.Module:
    model = model.to(rt.device)
    if rt.device.type == "cuda" and cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _wrap(model: nn.Module, cfg: Config, rt: Runtime) -> nn.Module:
    """DDP (under torchrun) and torch.compile wrappers around a prepared model."""
    if rt.distributed:
        if cfg.sync_bn:
            if rt.device.type != "cuda":
                raise ConfigError(
                    f"sync_bn needs CUDA devices (SyncBatchNorm has no {rt.device.type} kernel): "
                    "drop --sync-bn for gloo/CPU runs")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [rt.device.index] if rt.device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        model = torch.compile(model)
    return model


def _ddp(module: nn.Module, rt: Runtime) -> nn.Module:
    """DDP around a small trainable module (a probe, a classifier) under torchrun: rank 0's
    initial weights are broadcast and gradients averaged, so every rank holds the same weights."""
    if not rt.distributed:
        return module
    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _input_transform(data: Data, rt: Runtime, cfg: Config) -> Normalize:
    return Normalize(data.mean, data.std).to(rt.device)


def _format_images(x: Tensor, cfg: Config, rt: Runtime) -> Tensor:
    if rt.device.type == "cuda" and cfg.channels_last:
        return x.contiguous(memory_format=torch.channels_last)
    return x


@torch.no_grad()
def _forward_batches(model: nn.Module, images: Tensor, normalize: Normalize, rt: Runtime,
                     cfg: Config, batch_size: int = 512) -> Iterator[Tensor]:
    """``model`` outputs (float) for uint8 images, batch by batch, in eval mode, no augmentation."""
    was_training = model.training
    model.eval()
    for start in range(0, images.shape[0], batch_size):
        x = to_float_images(images[start:start + batch_size].to(rt.device, non_blocking=True))
        with _autocast(rt):
            out = model(_format_images(normalize(x), cfg, rt))
        yield out.float()
    model.train(was_training)


def extract_features(encoder: nn.Module, images: Tensor, normalize: Normalize, rt: Runtime,
                     cfg: Config, batch_size: int = 512) -> Tensor:
    """Encoder representations (no augmentation, eval mode) for uint8 images: (N, out_dim)."""
    out = list(_forward_batches(encoder, images, normalize, rt, cfg, batch_size))
    return torch.cat(out) if out else torch.zeros(0)


def _accuracy(pred: Tensor, labels: Tensor) -> float:
    return 100.0 * (pred.cpu() == labels.cpu()).float().mean().item()


def evaluate_classifier(model: nn.Module, images: Tensor, labels: Tensor, normalize: Normalize,
                        rt: Runtime, cfg: Config, batch_size: int = 512) -> dict[str, Any]:
    """Top-1 accuracy (%) of ``model`` (images -> logits) on uint8 images, and the predictions."""
    pred = torch.cat([logits.argmax(1).cpu()
                      for logits in _forward_batches(model, images, normalize, rt, cfg, batch_size)])
    return {"accuracy": _accuracy(pred, labels), "predictions": pred}


def _knn_accuracy(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor,
                  test_labels: Tensor, num_classes: int, k: int = 20, tau: float = 0.07,
                  chunk: int = 1024) -> float:
    """Weighted kNN top-1 (%) on cosine similarity (Wu et al. 2018's vote, weight exp(s/tau))."""
    train_feats = F.normalize(train_feats.float(), dim=1)
    test_feats = F.normalize(test_feats.float(), dim=1)
    k = min(k, train_feats.shape[0])
    correct = 0
    for start in range(0, test_feats.shape[0], chunk):
        sims = test_feats[start:start + chunk] @ train_feats.T
        top, idx = sims.topk(k, dim=1)
        votes = torch.zeros(sims.shape[0], num_classes, device=sims.device)
        votes.scatter_add_(1, train_labels[idx], torch.exp(top / tau))
        correct += (votes.argmax(1) == test_labels[start:start + chunk]).sum().item()
    return 100.0 * correct / max(1, test_feats.shape[0])


def knn_evaluate(encoder: nn.Module, data: Data, rt: Runtime, cfg: Config,
                 normalize: Normalize | None = None) -> float:
    """kNN top-1 (%) of an encoder's representations: train split as memory, test split queries."""
    normalize = normalize or _input_transform(data, rt, cfg)
    test_f = extract_features(encoder, data.test.images, normalize, rt, cfg)
    return _knn_from_test_features(encoder, test_f, data, normalize, rt, cfg)


def _knn_from_test_features(encoder: nn.Module, test_f: Tensor, data: Data, normalize: Normalize,
                            rt: Runtime, cfg: Config) -> float:
    train_f = extract_features(encoder, data.train.images, normalize, rt, cfg)
    return _knn_accuracy(train_f, data.train.labels.to(train_f.device), test_f,
                         data.test.labels.to(test_f.device), data.num_classes, k=cfg.knn_k)


def _finish_encoder_run(encoder: nn.Module, metrics: dict[str, Any], data: Data,
                        normalize: Normalize, rt: Runtime, cfg: Config, run_dir: Path,
                        title: str) -> None:
    """After pretraining or CE (rank 0): kNN accuracy, metrics.json, loss curves and t-SNE,
    from one pass of the encoder over the test split."""
    test_f = extract_features(encoder, data.test.images, normalize, rt, cfg)
    metrics["knn_acc"] = _knn_from_test_features(encoder, test_f, data, normalize, rt, cfg)
    _write_json(metrics, run_dir / METRICS_JSON)
    if cfg.plots:
        from supcon import report

        report.plot_training_curves(run_dir)
        report.plot_tsne(test_f[: cfg.tsne_points].cpu(), data.test.labels[: cfg.tsne_points],
                         run_dir / "tsne.png", classes=data.train.classes, seed=cfg.seed,
                         title=f"{title} encoder, t-SNE of test embeddings")


# ---------------------------------------------------------------------------------------------
# Pretraining (SupCon / SimCLR), with optional online probe and momentum queue
# ---------------------------------------------------------------------------------------------


def _build_augment(cfg: Config, data: Data, name: str | None = None) -> nn.Module:
    return build_augmentation(name or cfg.augment, data.image_size, data.channels,
                              crop_scale=(cfg.crop_min, 1.0), blur=cfg.blur, flip=cfg.flip)


class _EncoderAndHead(nn.Module):
    """Returns (representation, projection) in one forward, so DDP sees a single call."""

    def __init__(self, model: SupConModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.model.encoder(x)
        return h, self.model.head(h)


def build_supcon_model(cfg: Config, channels: int) -> SupConModel:
    encoder = build_encoder(cfg.arch, in_channels=channels, stem=cfg.stem, width=cfg.width)
    return SupConModel(encoder, head=cfg.head, feat_dim=cfg.feat_dim)


def _data_info(data: Data) -> dict[str, Any]:
    return {
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "num_classes": data.num_classes,
        "classes": list(data.train.classes),
        "channels": data.channels,
        "image_size": data.image_size,
        # training images actually used: fewer than the split's under cfg.label_fraction
        "train_images": int(data.train.images.shape[0]),
    }


def _start_run(cfg: Config, run_dir: str | Path, resume: bool, overwrite: bool,
               data: Data | None) -> tuple[Runtime, Path, Data]:
    """Runtime, a checked run directory (rank 0 creates it), seeded RNGs and the data."""
    rt = setup_runtime(cfg)
    run_dir = prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, is_main=rt.is_main)
    dist_utils.barrier()
    seed_everything(cfg.seed, rt.rank)
    return rt, run_dir, data or load_data(cfg)


def pretrain(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             data: Data | None = None) -> dict[str, Any]:
    """Contrastive pretraining (``cfg.method``: supcon or simclr); writes a 'pretrain' checkpoint."""
    rt, run_dir, data = _start_run(cfg, run_dir, resume, overwrite, data)
    if cfg.batch_size % rt.world_size:
        raise ConfigError(
            f"batch_size ({cfg.batch_size}) must be divisible by the world size ({rt.world_size})")
    model = _prepare_model(build_supcon_model(cfg, data.channels), cfg, rt)
    net = _wrap(_EncoderAndHead(model), cfg, rt)
    modules: dict[str, nn.Module] = {"model": model}
    probe = None
    if cfg.online_probe:
        probe = LinearClassifier(model.out_dim, data.num_classes).to(rt.device)
        modules["probe"] = probe
        probe_net = _ddp(probe, rt)
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = build_optimizer(params, cfg.optimizer, cfg.lr, cfg.momentum, cfg.weight_decay,
                                fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    augment = _build_augment(cfg, data).to(rt.device)
    normalize = _input_transform(data, rt, cfg)
    loss_fn = SupConLoss(cfg.temperature, variant=cfg.variant, chunk_size=_loss_chunk(cfg),
                         check_inputs=rt.device.type != "cuda")
    supervised = cfg.method == "supcon"
    queue = None
    if cfg.queue_size:
        from supcon.memory import MomentumQueue

        queue = MomentumQueue(model, cfg.queue_size, cfg.key_momentum, cfg.feat_dim, rt.device,
                              batch_size=cfg.batch_size)

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        views = make_views(augment, images, cfg.views)  # (b, V, C, S, S)
        b = views.shape[0]
        flat = _format_images(normalize(views.flatten(0, 1)), cfg, rt)
        extras: dict[str, Tensor] = {}
        with _autocast(rt):
            h, z = net(flat)
            # The key encoder embeds one view per image (the last); its keys enter the queue.
            keys = queue.encode(flat.unflatten(0, (b, cfg.views))[:, -1]) if queue is not None else None
        features = z.float().view(b, cfg.views, -1)
        loss_labels = labels if supervised else None
        contrast = {}
        if rt.distributed:
            contrast = dist_utils.gather_contrast(features, loss_labels)
        if queue is not None:
            contrast = queue.contrast_inputs(keys, loss_labels, contrast)
        loss = loss_fn(features, loss_labels, **contrast)
        if queue is not None:
            queue.enqueue_last()
        extras["contrastive_loss"] = loss.detach()
        if probe is not None:
            logits = probe_net(h.detach().float())
            probe_loss = F.cross_entropy(logits, labels.repeat_interleave(cfg.views))
            extras["probe_loss"] = probe_loss.detach()
            loss = loss + probe_loss
        return loss, extras

    def evaluate() -> dict[str, Any]:
        out: dict[str, Any] = {}
        if probe is not None:
            classifier = nn.Sequential(model.encoder, probe)
            out["online_probe_acc"] = evaluate_classifier(
                classifier, data.test.images, data.test.labels, normalize, rt, cfg)["accuracy"]
        return out

    task = Task(
        kind="pretrain", modules=modules, optimizer=optimizer, base_lr=cfg.lr, epochs=cfg.epochs,
        batch_size=cfg.batch_size, step=step, evaluate=evaluate,
        train_images=_place(data.train.images, rt.device), train_labels=data.train.labels.to(rt.device),
        info={"name": cfg.method},
    )
    if queue is not None:
        task.extra_state = queue.state_dict
        task.load_extra_state = queue.load_state_dict
        task.after_step = queue.update_key_encoder
    extra = {"signature": model_signature(model), **_data_info(data), "method": cfg.method}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        _finish_encoder_run(model.encoder, metrics, data, normalize, rt, cfg, run_dir, cfg.method)
    return metrics


# ---------------------------------------------------------------------------------------------
# Cross-entropy baseline
# ---------------------------------------------------------------------------------------------


def train_ce(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             data: Data | None = None) -> dict[str, Any]:
    """End-to-end cross-entropy training with the same encoder, augmentation and budget."""
    rt, run_dir, data = _start_run(cfg, run_dir, resume, overwrite, data)
    encoder = build_encoder(cfg.arch, in_channels=data.channels, stem=cfg.stem, width=cfg.width)
    model = _prepare_model(CEModel(encoder, data.num_classes), cfg, rt)
    net = _wrap(model, cfg, rt)
    lr = cfg.ce_lr if cfg.ce_lr is not None else cfg.lr
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, lr, cfg.momentum,
                                cfg.weight_decay, fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    augment = _build_augment(cfg, data).to(rt.device)
    normalize = _input_transform(data, rt, cfg)

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x = make_views(augment, images, 1)[:, 0]
        with _autocast(rt):
            logits = net(_format_images(normalize(x), cfg, rt))
        return F.cross_entropy(logits.float(), labels), {}

    latest: dict[str, Tensor] = {}

    def evaluate() -> dict[str, Any]:
        result = evaluate_classifier(model, data.test.images, data.test.labels, normalize, rt, cfg)
        latest["predictions"] = result["predictions"]
        return {"test_acc": result["accuracy"]}

    task = Task(
        kind="ce", modules={"model": model}, optimizer=optimizer, base_lr=lr,
        epochs=cfg.ce_epochs or cfg.epochs, batch_size=cfg.batch_size, step=step, evaluate=evaluate,
        train_images=_place(data.train.images, rt.device), train_labels=data.train.labels.to(rt.device),
        info={"name": "ce"},
    )
    extra = {"signature": model_signature(model), **_data_info(data), "method": "ce"}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        if "predictions" not in latest:  # resuming a finished run: no epoch ran here
            metrics.update(evaluate())
        torch.save(latest["predictions"], run_dir / "test_predictions.pt")
        _finish_encoder_run(model.encoder, metrics, data, normalize, rt, cfg, run_dir, "cross-entropy")
    return metrics


# ---------------------------------------------------------------------------------------------
# Linear probe (frozen encoder) and fine-tuning
# ---------------------------------------------------------------------------------------------


def encoder_from_signature(signature: dict[str, Any], path: str | Path) -> nn.Module:
    """A fresh encoder of the architecture a checkpoint's ``signature`` names."""
    try:
        return build_encoder(signature["arch"], in_channels=signature["in_channels"],
                             stem=signature.get("stem") or "cifar", width=signature.get("width", 1))
    except KeyError:
        raise CheckpointError(f"{path} has no model signature (arch, in_channels)") from None


def load_weights(module: nn.Module, weights: dict[str, Tensor], path: str | Path, what: str) -> None:
    """``module.load_state_dict(weights)``, with a CheckpointError naming the file on a mismatch."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the {what} weights do not fit the model it names: {exc}") from None


def encoder_from_checkpoint(path: str | Path, cfg: Config | None = None, *,
                            channels: int | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds the encoder stored in a pretrain or CE checkpoint (architecture from the file).

    Raises:
        CheckpointError: not a supcon checkpoint, or the weights do not fit the architecture it
            names, or ``channels`` differs from the data the encoder was trained on.
    """
    state = load_checkpoint(path, kind=("pretrain", "ce"))
    sig = state.get("signature", {})
    encoder = encoder_from_signature(sig, path)
    if channels is not None and channels != encoder.in_channels:
        raise CheckpointError(f"{path} holds an encoder for {encoder.in_channels}-channel images, "
                              f"the dataset has {channels} channels")
    prefix = "encoder."
    load_weights(encoder, {k[len(prefix):]: v for k, v in state["model"]["model"].items()
                           if k.startswith(prefix)}, path, f"{sig['arch']!r} encoder")
    return encoder, state


def train_linear(cfg: Config, checkpoint: str | Path, run_dir: str | Path, *, resume: bool = False,
                 overwrite: bool = False, data: Data | None = None) -> dict[str, Any]:
    """Stage 2: a linear classifier on the frozen encoder (or the whole network with finetune)."""
    rt, run_dir, data = _start_run(cfg, run_dir, resume, overwrite, data)
    encoder, source = encoder_from_checkpoint(checkpoint, cfg, channels=data.channels)
    encoder = _prepare_model(encoder, cfg, rt)
    classifier = LinearClassifier(encoder.out_dim, data.num_classes).to(rt.device)
    normalize = _input_transform(data, rt, cfg)
    full = nn.Sequential(encoder, classifier)
    modules: dict[str, nn.Module] = {"classifier": classifier}
    cached = not cfg.finetune and cfg.linear_augment == "none"
    if cfg.finetune:
        modules = {"encoder": encoder, "classifier": classifier}
        params = list(full.parameters())
        net = _wrap(full, cfg, rt)
    else:
        for p in encoder.parameters():
            p.requires_grad_(False)
        encoder.eval()
        params = list(classifier.parameters())
        net = None
    # Under torchrun the classifier trains on the global batch: DDP averages its gradients.
    classifier_net = classifier if cfg.finetune else _ddp(classifier, rt)
    optimizer = build_optimizer(params, "sgd", cfg.linear_lr, cfg.momentum,
                                0.0 if not cfg.finetune else cfg.weight_decay)
    if cached:
        train_inputs = extract_features(encoder, data.train.images, normalize, rt, cfg)
    else:
        train_inputs = _place(data.train.images, rt.device)
    test_feats = extract_features(encoder, data.test.images, normalize, rt, cfg) if not cfg.finetune else None
    augment = None if cached else _build_augment(cfg, data, cfg.linear_augment).to(rt.device)

    def step(inputs: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if cached:
            logits = classifier_net(inputs)
        else:
            x = _format_images(normalize(make_views(augment, inputs, 1)[:, 0]), cfg, rt)
            with _autocast(rt):
                if cfg.finetune:
                    logits = net(x)
                else:
                    encoder.eval()
                    with torch.no_grad():
                        h = encoder(x)
                    logits = classifier_net(h.float())
        return F.cross_entropy(logits.float(), labels), {}

    latest: dict[str, Tensor] = {}

    def evaluate() -> dict[str, Any]:
        if cfg.finetune:
            pred = evaluate_classifier(full, data.test.images, data.test.labels,
                                       normalize, rt, cfg)["predictions"]
        else:
            with torch.no_grad():
                pred = classifier(test_feats).argmax(1).cpu()
        latest["predictions"] = pred
        return {"test_acc": _accuracy(pred, data.test.labels)}

    batch = min(cfg.linear_batch_size, data.train.images.shape[0])
    if batch < cfg.linear_batch_size:  # capped by a small training set: keep it divisible by the ranks
        batch -= batch % rt.world_size
    task = Task(
        kind="linear", modules=modules, optimizer=optimizer, base_lr=cfg.linear_lr,
        epochs=cfg.linear_epochs, batch_size=batch, step=step, evaluate=evaluate,
        train_images=train_inputs, train_labels=data.train.labels.to(rt.device),
        info={"name": "linear" if not cfg.finetune else "finetune"},
    )
    extra = {"source_checkpoint": str(checkpoint), "signature": source.get("signature", {}),
             **_data_info(data), "method": source.get("method", "?")}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        if "predictions" not in latest:  # resuming a finished run: no epoch ran here
            metrics.update(evaluate())
        metrics["source_method"] = source.get("method", "?")
        _write_json(metrics, run_dir / METRICS_JSON)
        torch.save(latest["predictions"], run_dir / "test_predictions.pt")
        if cfg.plots:
            from supcon import report

            report.plot_training_curves(run_dir)
    return metrics
