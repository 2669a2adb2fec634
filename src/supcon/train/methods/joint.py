"""One-stage SupCon + cross-entropy (``--method supcon+ce``).

The encoder and projection head train with SupCon (eq. 2, Khosla et al. 2020) as in
:mod:`supcon.train.methods.pretrain`, and a linear classifier on the representation trains with
cross-entropy in the same step, from the same forward pass::

    loss = L_supcon(projections of the V views) + w x CE(classifier(representations), labels)

``w`` is ``--ce-weight``. Without ``--ce-detach`` the CE gradient reaches the encoder (the joint
objective); with it the classifier sees stop-gradient features (an online linear probe: the
encoder trains on SupCon alone). Writes a ``pretrain`` checkpoint whose ``model`` entry is the
:class:`supcon.models.SupConModel` (so `supcon linear` works on it) and whose ``classifier`` entry
is the linear classifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from supcon.augment import Normalize
from supcon.config import Config
from supcon.data import DataSplits
from supcon.memory import MomentumQueue
from supcon.metrics import evaluate_classifier
from supcon.models import LinearClassifier, SupConModel
from supcon.train.callbacks import TrainCallback
from supcon.train.loop import Task
from supcon.train.methods.common import (build_augment, effective_values, input_transform, run_class_weights,
                                         start_run)
from supcon.train.methods.pretrain import (EncoderAndHead, build_supcon_model, contrastive_step, fit_encoder_task,
                                           momentum_queue, pretrain_schedule)
from supcon.train.optim import build_optimizer
from supcon.train.runtime import Runtime, ddp, place, prepare_model, wrap

__all__ = ["train_joint", "joint_step", "KeepRepresentation"]


class KeepRepresentation(nn.Module):
    """Wraps a ``(representation, projection)`` net and keeps the last call's representation, so the
    classifier reuses the forward pass of the contrastive step (the encoder runs once per batch)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.last: Tensor | None = None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h, z = self.net(x)
        self.last = h
        return h, z

    def take(self) -> Tensor:
        """The representation of the last call ``(B * views, out_dim)``, forgotten here."""
        if self.last is None:
            raise RuntimeError("no representation kept: the net has not run since the last take()")
        h, self.last = self.last, None
        return h


def joint_step(cfg: Config, rt: Runtime, net: nn.Module, classifier: nn.Module, augment: nn.Module,
               normalize: Normalize, queue: MomentumQueue | None = None, weights: Tensor | None = None
               ) -> Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]]:
    """One batch -> (loss, extras): the SupCon step of :func:`contrastive_step` plus ``cfg.ce_weight``
    times the cross-entropy of ``classifier`` on the same representations (every view, its image's
    label; stop-gradient features under ``cfg.ce_detach``).

    Args:
        net: ``images -> (representations, projections)`` (:class:`EncoderAndHead`, maybe wrapped).
        classifier: ``(N, out_dim) -> (N, classes)`` logits.
        weights: ``(classes,)`` class weights of both losses, or ``None``.
    """
    keep = KeepRepresentation(net)
    contrastive = contrastive_step(dataclasses.replace(cfg, method="supcon"), rt, keep, augment, normalize,
                                   queue, None, weights)

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        loss, extras = contrastive(images, labels)
        h = keep.take().float()
        logits = classifier(h.detach() if cfg.ce_detach else h)
        ce = F.cross_entropy(logits, labels.repeat_interleave(cfg.views), weight=weights)
        extras["ce_loss"] = ce.detach()
        return loss + cfg.ce_weight * ce, extras

    return step


def train_joint(cfg: Config, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
                data: DataSplits | None = None, callbacks: Sequence[TrainCallback] = (),
                inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """SupCon + CE in one stage (``cfg.method == "supcon+ce"``) into a 'pretrain' checkpoint; the
    arguments are :func:`supcon.train.methods.pretrain.pretrain`'s.

    Returns:
        The final epoch's metrics: ``contrastive_loss``, ``ce_loss``, the classifier's test top-1
        ``classifier_acc`` and, on rank 0, the encoder's kNN accuracy ``knn_acc``.
    """
    with start_run(cfg, run_dir, "pretrain", resume, overwrite, data, inputs) as (rt, run_dir, data):
        return _train_joint(cfg, rt, run_dir, data, resume, callbacks)


def _models(cfg: Config, rt: Runtime, data: DataSplits) -> tuple[SupConModel, LinearClassifier]:
    model = prepare_model(build_supcon_model(cfg, data.channels, data.image_size), rt)
    return model, LinearClassifier(model.out_dim, data.num_classes).to(rt.device)


def _train_joint(cfg: Config, rt: Runtime, run_dir: Path, data: DataSplits, resume: bool,
                 callbacks: Sequence[TrainCallback]) -> dict[str, Any]:
    batch, lr, warmup = pretrain_schedule(cfg, rt, data)
    model, classifier = _models(cfg, rt, data)
    modules: dict[str, nn.Module] = {"model": model, "classifier": classifier}
    optimizer = build_optimizer([p for m in modules.values() for p in m.parameters()], cfg.optimizer, lr,
                                cfg.momentum, cfg.weight_decay,
                                fused=rt.device.type == "cuda" and cfg.optimizer == "sgd")
    normalize = input_transform(data, rt)
    queue = momentum_queue(cfg, model, rt, batch)
    step = joint_step(cfg, rt, wrap(EncoderAndHead(model), cfg, rt), ddp(classifier, rt),
                      build_augment(cfg, data).to(rt.device), normalize, queue, run_class_weights(cfg, data, rt))

    def evaluate() -> dict[str, Any]:
        result = evaluate_classifier(nn.Sequential(model.encoder, classifier), data.test.images,
                                     data.test.labels, normalize, rt.inference())
        return {"classifier_acc": result["accuracy"]}

    task = Task(
        kind="pretrain", modules=modules, optimizer=optimizer, base_lr=lr, epochs=cfg.epochs,
        batch_size=batch, step=step, evaluate=evaluate, warmup_epochs=warmup,
        effective=effective_values(batch, cfg.batch_size, lr, cfg.lr, warmup),
        train_images=place(data.train.images, rt.device), train_labels=data.train.labels.to(rt.device),
        info={"name": cfg.method},
    )
    return fit_encoder_task(task, model, queue, cfg, rt, run_dir, data, normalize, resume, callbacks)
