"""The cross-entropy baseline: the same encoder, augmentation and budget, trained end to end."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from supcon.augment import make_views
from supcon.config import Config, ce_epoch_count, ce_learning_rate, config_to_dict
from supcon.data import DataSplits
from supcon.metrics import evaluate_classifier
from supcon.models import CEModel, build_encoder, model_signature
from supcon.runfiles import TEST_PREDICTIONS, write_atomic
from supcon.train.callbacks import TrainCallback
from supcon.train.loop import Task, fit
from supcon.train.methods.common import (build_augment, class_accuracy_metrics, classifier_loss_bound, data_info,
                                         effective_values, finish_encoder_run, fitted_batch, input_transform,
                                         run_class_weights, scaled_lr, start_run)
from supcon.train.optim import build_optimizer
from supcon.train.runtime import Runtime, place, prepare_model, wrap

__all__ = ["train_ce"]


def train_ce(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
             data: DataSplits | None = None, callbacks: Sequence[TrainCallback] = (),
             inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """End-to-end cross-entropy training with the same encoder, augmentation and budget.

    The learning rate is ``cfg.ce_lr`` (``cfg.lr`` when unset) and the epochs ``cfg.ce_epochs``
    (``cfg.epochs`` when unset). Writes a 'ce' checkpoint and the test predictions. ``inputs``:
    files the run reads besides its dataset (the --config file), which ``overwrite`` never deletes.
    """
    with start_run(cfg, run_dir, "ce", resume, overwrite, data, inputs) as (rt, run_dir, data):
        return _train_ce(cfg, rt, run_dir, data, resume, callbacks)


def _train_ce(cfg: Config, rt: Runtime, run_dir: Path, data: DataSplits, resume: bool,
              callbacks: Sequence[TrainCallback]) -> dict[str, Any]:
    encoder = build_encoder(cfg.arch, in_channels=data.channels, stem=cfg.stem, width=cfg.width,
                            image_size=data.image_size)
    model = prepare_model(CEModel(encoder, data.num_classes), rt)
    net = wrap(model, cfg, rt)
    values = config_to_dict(cfg)
    batch = fitted_batch(cfg.batch_size, data.train.images.shape[0], rt.world_size)
    lr = scaled_lr(cfg, ce_learning_rate(values), batch)
    warmup = cfg.warmup_epochs or 0.0
    optimizer = build_optimizer(model.parameters(), cfg.optimizer, lr, cfg.momentum,
                                cfg.weight_decay, fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    augment = build_augment(cfg, data).to(rt.device)
    normalize = input_transform(data, rt)
    weights = run_class_weights(cfg, data, rt)

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x = make_views(augment, images, 1)[:, 0]
        with rt.autocast():
            logits = net(rt.format(normalize(x)))
        return F.cross_entropy(logits.float(), labels, weight=weights), {}

    latest: dict[str, Tensor] = {}

    def evaluate() -> dict[str, Any]:
        result = evaluate_classifier(model, data.test.images, data.test.labels, normalize, rt.inference())
        latest["predictions"] = result["predictions"]
        return {"test_acc": result["accuracy"]}

    task = Task(
        kind="ce", modules={"model": model}, optimizer=optimizer, base_lr=lr,
        epochs=ce_epoch_count(values), batch_size=batch, step=step, evaluate=evaluate, warmup_epochs=warmup,
        loss_bound=classifier_loss_bound(data.num_classes), advice="lower --ce-lr (or --lr) or raise --warmup-epochs",
        effective=effective_values(batch, cfg.batch_size, lr, ce_learning_rate(values), warmup),
        train_images=place(data.train.images, rt.device), train_labels=data.train.labels.to(rt.device),
        info={"name": "ce"}, views=1,
    )
    extra = {"signature": model_signature(model), **data_info(data), "method": "ce"}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        if "predictions" not in latest:  # resuming a finished run: no epoch ran here
            metrics.update(evaluate())
        predictions = latest["predictions"]
        metrics.update(class_accuracy_metrics(predictions, data.test.labels, data.num_classes))
        write_atomic(run_dir / TEST_PREDICTIONS, lambda handle: torch.save(predictions, handle))
        finish_encoder_run(model.encoder, metrics, data, normalize, rt, cfg, run_dir, "ce", "cross-entropy",
                           callbacks)
    return metrics
