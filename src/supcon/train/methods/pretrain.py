"""Contrastive pretraining: SupCon (labels) and SimCLR (no labels), with an optional online probe
and momentum-encoder queue. Writes a ``pretrain`` checkpoint (encoder + projection head)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from supcon import distributed as dist_utils
from supcon.augment import Normalize, make_views
from supcon.config import Config, ConfigError
from supcon.data import DataSplits
from supcon.losses import SupConLoss
from supcon.memory import MomentumQueue
from supcon.metrics import evaluate_classifier
from supcon.models import ProbeClassifier, SupConModel, build_encoder, model_signature
from supcon.train.callbacks import TrainCallback
from supcon.train.loop import Task, fit
from supcon.train.methods.common import (build_augment, data_info, effective_values, finish_encoder_run,
                                         fitted_batch, input_transform, loss_chunk, pretrain_warmup_epochs,
                                         run_class_weights, scaled_lr, start_run)
from supcon.train.optim import build_optimizer
from supcon.train.runtime import Runtime, ddp, place, prepare_model, wrap

__all__ = ["pretrain", "build_supcon_model", "contrastive_step", "EncoderAndHead", "pretrain_schedule",
           "momentum_queue", "weighted_anchor_mean"]


class EncoderAndHead(nn.Module):
    """Returns (representation, projection) in one forward, so DDP sees a single call."""

    def __init__(self, model: SupConModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.model.encoder(x)
        return h, self.model.head(h)


def build_supcon_model(cfg: Config, channels: int, image_size: int | None = None) -> SupConModel:
    """The encoder + projection head ``cfg`` describes, for ``channels``-channel images of side
    ``image_size`` (what a ViT sizes its patches and position embeddings for; CNNs take any size)."""
    encoder = build_encoder(cfg.arch, in_channels=channels, stem=cfg.stem, width=cfg.width, image_size=image_size)
    return SupConModel(encoder, head=cfg.head, feat_dim=cfg.feat_dim)


def weighted_anchor_mean(anchor_losses: Tensor, labels: Tensor, weights: Tensor) -> Tensor:
    """The mean over anchors of ``weights[class] x loss``: ``anchor_losses`` is supcon_loss's
    ``reduction="none"`` vector ``(views * batch,)``, view-major (row ``v * batch + i`` is image ``i``);
    every anchor has a positive (its other views, ``views >= 2``). Under torchrun DDP's gradient mean
    over equal-sized ranks makes this the mean over the global batch."""
    views = anchor_losses.shape[0] // labels.shape[0]
    return (anchor_losses * weights[labels].repeat(views)).mean()


def contrastive_step(cfg: Config, rt: Runtime, net: nn.Module, augment: nn.Module, normalize: Normalize,
                      queue: MomentumQueue | None, probe_net: nn.Module | None, weights: Tensor | None = None
                      ) -> Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]]:
    """One batch -> (loss, extras): n views, encoder + head, SupCon/SimCLR loss (+ online probe).

    ``weights`` ``(classes,)``: per-anchor class weights (SupCon only): the loss is
    :func:`weighted_anchor_mean` of the per-anchor losses."""
    supervised = cfg.method == "supcon"
    weighted = supervised and weights is not None
    loss_fn = SupConLoss(cfg.temperature, variant=cfg.variant, chunk_size=loss_chunk(cfg),
                         check_inputs=rt.device.type != "cuda", reduction="none" if weighted else "mean")

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        views = make_views(augment, images, cfg.views)  # (b, V, C, S, S)
        b = views.shape[0]
        flat = rt.format(normalize(views.flatten(0, 1)))
        with rt.autocast():
            h, z = net(flat)
            # The key encoder embeds one view per image (the last); its keys enter the queue.
            keys = queue.encode(flat.unflatten(0, (b, cfg.views))[:, -1]) if queue is not None else None
        features = z.float().view(b, cfg.views, -1)
        loss_labels = labels if supervised else None
        contrast = dist_utils.gather_contrast(features, loss_labels) if rt.distributed else {}
        if queue is not None:
            contrast = queue.contrast_inputs(keys, loss_labels, contrast)
        loss = loss_fn(features, loss_labels, **contrast)
        if weighted:
            loss = weighted_anchor_mean(loss, labels, weights)
        if queue is not None:
            queue.enqueue_last()
        extras = {"contrastive_loss": loss.detach()}
        if probe_net is not None:
            probe_loss = F.cross_entropy(probe_net(h.detach().float()), labels.repeat_interleave(cfg.views))
            extras["probe_loss"] = probe_loss.detach()
            loss = loss + probe_loss
        return loss, extras

    return step


def pretrain(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             data: DataSplits | None = None, callbacks: Sequence[TrainCallback] = (),
             inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Contrastive pretraining (``cfg.method``: supcon or simclr); writes a 'pretrain' checkpoint.

    Args:
        inputs: files the run reads besides its dataset (the --config file): ``overwrite`` refuses
            a ``run_dir`` that is or holds one.

    Returns:
        The final epoch's metrics, with the encoder's kNN accuracy (``knn_acc``) on rank 0.
    """
    with start_run(cfg, run_dir, "pretrain", resume, overwrite, data, inputs) as (rt, run_dir, data):
        return _pretrain(cfg, rt, run_dir, data, resume, callbacks)


def pretrain_schedule(cfg: Config, rt: Runtime, data: DataSplits) -> tuple[int, float, float]:
    """(batch, scaled lr, warm-up epochs) of contrastive pretraining on ``data``.

    Raises:
        ConfigError: a batch that the processes cannot split evenly.
    """
    if cfg.batch_size % rt.world_size:
        raise ConfigError(
            f"batch_size ({cfg.batch_size}) must be divisible by the world size ({rt.world_size})")
    batch = fitted_batch(cfg.batch_size, data.train.images.shape[0], rt.world_size)
    return batch, scaled_lr(cfg, cfg.lr, batch), pretrain_warmup_epochs(cfg)


def momentum_queue(cfg: Config, model: SupConModel, rt: Runtime, batch: int) -> MomentumQueue | None:
    """The momentum encoder + label queue of ``cfg.queue_size`` (None when it is 0)."""
    if not cfg.queue_size:
        return None
    return MomentumQueue(model, cfg.queue_size, cfg.key_momentum, cfg.feat_dim, rt.device, batch_size=batch)


def _pretrain(cfg: Config, rt: Runtime, run_dir: Path, data: DataSplits, resume: bool,
              callbacks: Sequence[TrainCallback]) -> dict[str, Any]:
    batch, lr, warmup = pretrain_schedule(cfg, rt, data)
    model = prepare_model(build_supcon_model(cfg, data.channels, data.image_size), rt)
    net = wrap(EncoderAndHead(model), cfg, rt)
    modules: dict[str, nn.Module] = {"model": model}
    probe = probe_net = None
    if cfg.online_probe:
        probe = ProbeClassifier(model.out_dim, data.num_classes).to(rt.device)
        modules["probe"] = probe
        probe_net = ddp(probe, rt)
    params = [p for m in modules.values() for p in m.parameters()]
    optimizer = build_optimizer(params, cfg.optimizer, lr, cfg.momentum, cfg.weight_decay,
                                fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    augment = build_augment(cfg, data).to(rt.device)
    normalize = input_transform(data, rt)
    queue = momentum_queue(cfg, model, rt, batch)
    step = contrastive_step(cfg, rt, net, augment, normalize, queue, probe_net, run_class_weights(cfg, data, rt))

    def evaluate() -> dict[str, Any]:
        if probe is None:
            return {}
        classifier = nn.Sequential(model.encoder, probe)
        result = evaluate_classifier(classifier, data.test.images, data.test.labels, normalize, rt.inference())
        return {"online_probe_acc": result["accuracy"]}

    task = Task(
        kind="pretrain", modules=modules, optimizer=optimizer, base_lr=lr, epochs=cfg.epochs,
        batch_size=batch, step=step, evaluate=evaluate, warmup_epochs=warmup,
        effective=effective_values(batch, cfg.batch_size, lr, cfg.lr, warmup),
        train_images=place(data.train.images, rt.device), train_labels=data.train.labels.to(rt.device),
        info={"name": cfg.method}, label_positives=cfg.method != "simclr",
    )
    return fit_encoder_task(task, model, queue, cfg, rt, run_dir, data, normalize, resume, callbacks)


def fit_encoder_task(task: Task, model: SupConModel, queue: MomentumQueue | None, cfg: Config, rt: Runtime,
                     run_dir: Path, data: DataSplits, normalize: Normalize, resume: bool,
                     callbacks: Sequence[TrainCallback]) -> dict[str, Any]:
    """Trains a contrastive task (its queue's state in the checkpoint) and finishes the encoder run:
    kNN, metrics.json, callbacks. Shared by SupCon/SimCLR and the joint supcon+ce method."""
    if queue is not None:
        task.extra_state = queue.state_dict
        task.load_extra_state = queue.load_state_dict
        task.after_step = queue.update_key_encoder
    extra = {"signature": model_signature(model), **data_info(data), "method": cfg.method}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        finish_encoder_run(model.encoder, metrics, data, normalize, rt, cfg, run_dir, "pretrain", cfg.method,
                           callbacks)
    return metrics
