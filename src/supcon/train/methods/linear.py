"""Stage 2: a linear classifier on a frozen pretrained encoder, or fine-tuning the whole network.

The encoder may come from another dataset (transfer): the probe's dataset is adapted to what the
encoder takes (:mod:`supcon.data.adapt`: its image side, its channels, its training normalisation) and
a new classifier is sized for the probe's classes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon.augment import Normalize, make_views
from supcon.checkpoint import CheckpointError, encoder_from_checkpoint, encoder_input, load_checkpoint
from supcon.config import Config
from supcon.data import DataSplits
from supcon.data.adapt import Adaptation, adapt_splits, check_probe_image_size, load_adapted_splits
from supcon.metrics import Inference, accuracy, evaluate_classifier, extract_features, knn_accuracy
from supcon.models import ProbeClassifier
from supcon.runfiles import CHECKPOINT_NAME, METRICS_JSON, TEST_PREDICTIONS, write_atomic, write_json_atomic
from supcon.train.callbacks import RunEnd, TrainCallback, notify
from supcon.train.loop import Task, fit
from supcon.train.methods.common import (build_augment, class_accuracy_metrics, classifier_loss_bound, data_info,
                                         effective_values, input_transform, run_class_weights, scaled_lr, start_run)
from supcon.train.optim import build_optimizer
from supcon.train.runtime import Runtime, ddp, place, prepare_model, wrap

__all__ = ["train_linear"]

log = logging.getLogger(__name__)

StepFn = Callable[[Tensor, Tensor], tuple[Tensor, dict[str, Tensor]]]


def _image_step(cfg: Config, rt: Runtime, encoder: nn.Module, classifier_net: nn.Module, net: nn.Module | None,
                augment: nn.Module, normalize: Normalize, weights: Tensor | None = None) -> StepFn:
    """A step on augmented images: through the frozen encoder (no grad), or the whole net (fine-tune)."""

    def step(images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        x = rt.format(normalize(make_views(augment, images, 1)[:, 0]))
        with rt.autocast():
            if net is not None:
                logits = net(x)
            else:
                encoder.eval()
                with torch.no_grad():
                    h = encoder(x)
                logits = classifier_net(h.float())
        return F.cross_entropy(logits.float(), labels, weight=weights), {}

    return step


def _feature_step(classifier_net: nn.Module, weights: Tensor | None = None) -> StepFn:
    """A step on cached encoder features: only the classifier runs."""

    def step(features: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return F.cross_entropy(classifier_net(features).float(), labels, weight=weights), {}

    return step


def _knn(encoder: nn.Module, train_feats: Tensor | None, test_feats: Tensor, data: DataSplits,
         normalize: Normalize, how: Inference, k: int) -> float:
    """kNN top-1 (%) of the frozen encoder's features: the training split as memory, the test split as queries."""
    if train_feats is None:
        train_feats = extract_features(encoder, data.train.images, normalize, how)
    return knn_accuracy(train_feats, data.train.labels, test_feats, data.test.labels, data.num_classes, k=k)


def _batch_size(cfg: Config, data: DataSplits, rt: Runtime) -> int:
    """The probe's batch: ``linear_batch_size``, capped by a small training set (and kept divisible
    by the number of ranks)."""
    batch = min(cfg.linear_batch_size, data.train.images.shape[0])
    if batch < cfg.linear_batch_size:
        batch -= batch % rt.world_size
    return batch


def train_linear(cfg: Config, checkpoint: str | Path, run_dir: str | Path, *, resume: bool = False,
                 overwrite: bool = False, data: DataSplits | None = None,
                 callbacks: Sequence[TrainCallback] = (), inputs: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Stage 2: a linear classifier on the frozen encoder (or the whole network with ``cfg.finetune``).

    With ``linear_augment: none`` and no fine-tuning the encoder's features are computed once and
    the classifier trains on them. Writes a 'linear' checkpoint and the test predictions.
    ``overwrite`` refuses a ``run_dir`` that is or holds ``checkpoint``, the dataset or ``inputs``
    (the --config file); ``resume`` refuses a ``checkpoint`` that trained on since the probe began.

    Transfer: ``checkpoint`` may hold an encoder trained on another dataset (pretrain or CE; a CE
    checkpoint's classifier is not used). The data are adapted to it by :mod:`supcon.data.adapt`
    (loaded at its image side, gray <-> RGB converted, its training normalisation) and the
    classifier has the new dataset's classes; when that changed anything (or the dataset is another
    one) the run logs one ``transfer: ...`` line and records it as ``transfer`` in metrics.json, the
    checkpoint and config.yaml (``# effective transfer:``), and a frozen probe also reports the kNN
    top-1 (``knn_acc``, k = ``knn_k``) of the adapted features.
    """
    state = load_checkpoint(checkpoint, kind=("pretrain", "ce"))
    target = encoder_input(state, checkpoint)
    if target is not None:  # before the run folder is claimed or the data loaded
        check_probe_image_size(cfg, target, checkpoint)
    given = data
    with start_run(cfg, run_dir, "linear", resume, overwrite, data, [checkpoint, *inputs]) as (rt, run_dir, data):
        adaptation = None
        if target is not None:
            data, adaptation = (adapt_splits(data, target, cfg.dataset) if given is not None
                                else load_adapted_splits(cfg, target, loaded=data, checkpoint=checkpoint))
        return _train_linear(cfg, checkpoint, rt, run_dir, data, resume, callbacks, adaptation)


def _check_same_source(run_dir: Path, checkpoint: str | Path, source: dict[str, Any]) -> None:
    """A resumed probe goes on with the encoder it began on, not one trained further since."""
    began, now = load_checkpoint(run_dir / CHECKPOINT_NAME, kind="linear").get("source_epoch"), source.get("epoch")
    if began is not None and began != now:
        raise CheckpointError(f"{run_dir} probes epoch {began} of {checkpoint}, which now holds epoch {now}: "
                              "resuming would mix two encoders; start the probe afresh (--overwrite)")


def _trained_modules(cfg: Config, rt: Runtime, encoder: nn.Module, classifier: nn.Module, full: nn.Module
                     ) -> tuple[dict[str, nn.Module], nn.Module | None, nn.Module]:
    """(modules to train and checkpoint, the wrapped whole net when fine-tuning, the classifier as
    trained): fine-tuning trains both; a probe freezes the encoder."""
    if cfg.finetune:
        return {"encoder": encoder, "classifier": classifier}, wrap(full, cfg, rt), classifier
    for p in encoder.parameters():
        p.requires_grad_(False)
    encoder.eval()
    # Under torchrun the classifier trains on the global batch: DDP averages its gradients.
    return {"classifier": classifier}, None, ddp(classifier, rt)


def _transfer(cfg: Config, adaptation: Adaptation | None) -> tuple[Config, dict[str, Any] | None]:
    """The config the probe runs with (at the encoder's image side when the data were resized) and
    what it records of the transfer (``None`` for the encoder's own data)."""
    if adaptation is None or not adaptation.is_transfer:
        return cfg, None
    log.info("%s", adaptation.describe())
    if adaptation.resized:
        cfg = dataclasses.replace(cfg, image_size=adaptation.encoder.image_size)
    return cfg, adaptation.as_dict()


def _train_linear(cfg: Config, checkpoint: str | Path, rt: Runtime, run_dir: Path, data: DataSplits,
                  resume: bool, callbacks: Sequence[TrainCallback], adaptation: Adaptation | None) -> dict[str, Any]:
    cfg, transfer = _transfer(cfg, adaptation)
    encoder, source = encoder_from_checkpoint(checkpoint, cfg, channels=data.channels)
    if resume:
        _check_same_source(run_dir, checkpoint, source)
    encoder = prepare_model(encoder, rt)
    classifier = ProbeClassifier(encoder.out_dim, data.num_classes).to(rt.device)
    normalize = input_transform(data, rt)
    full = nn.Sequential(encoder, classifier)
    cached = not cfg.finetune and cfg.linear_augment == "none"
    modules, net, classifier_net = _trained_modules(cfg, rt, encoder, classifier, full)
    params = [p for m in modules.values() for p in m.parameters()]
    batch = _batch_size(cfg, data, rt)
    lr = scaled_lr(cfg, cfg.linear_lr, batch)
    optimizer = build_optimizer(params, "sgd", lr, cfg.momentum,
                                0.0 if not cfg.finetune else cfg.weight_decay)
    how = rt.inference()
    if cached:
        train_inputs = extract_features(encoder, data.train.images, normalize, how)
    else:
        train_inputs = place(data.train.images, rt.device)
    test_feats = extract_features(encoder, data.test.images, normalize, how) if not cfg.finetune else None
    weights = run_class_weights(cfg, data, rt)
    if cached:
        step = _feature_step(classifier_net, weights)
    else:
        augment = build_augment(cfg, data, cfg.linear_augment).to(rt.device)
        step = _image_step(cfg, rt, encoder, classifier_net, net, augment, normalize, weights)
    latest: dict[str, Tensor] = {}

    def evaluate() -> dict[str, Any]:
        if cfg.finetune:
            pred = evaluate_classifier(full, data.test.images, data.test.labels, normalize, how)["predictions"]
        else:
            with torch.no_grad():
                pred = classifier(test_feats).argmax(1).cpu()
        latest["predictions"] = pred
        return {"test_acc": accuracy(pred, data.test.labels)}

    task = Task(
        kind="linear", modules=modules, optimizer=optimizer, base_lr=lr,
        epochs=cfg.linear_epochs, batch_size=batch, step=step, evaluate=evaluate,
        train_images=train_inputs, train_labels=data.train.labels.to(rt.device),
        loss_bound=classifier_loss_bound(data.num_classes), advice="lower --linear-lr",
        effective={**effective_values(batch, batch, lr, cfg.linear_lr, 0.0),
                   **({"transfer": adaptation.summary} if transfer and adaptation else {})},
        info={"name": "linear" if not cfg.finetune else "finetune"}, sampler="random", views=1,
    )
    extra = {"source_checkpoint": str(checkpoint), "source_epoch": source.get("epoch"),
             "signature": source.get("signature", {}), **data_info(data), "method": source.get("method", "?"),
             **({"transfer": transfer} if transfer else {})}
    metrics = fit(task, cfg, rt, run_dir, resume=resume, checkpoint_extra=extra)
    if rt.is_main:
        if "predictions" not in latest:  # resuming a finished run: no epoch ran here
            metrics.update(evaluate())
        metrics["source_method"] = source.get("method", "?")
        if transfer:
            metrics["transfer"] = transfer
            if not cfg.finetune:
                metrics["knn_acc"] = _knn(encoder, train_inputs if cached else None, test_feats, data, normalize,
                                          how, cfg.knn_k)
        predictions = latest["predictions"]
        metrics.update(class_accuracy_metrics(predictions, data.test.labels, data.num_classes))
        write_json_atomic(run_dir / METRICS_JSON, metrics)
        write_atomic(run_dir / TEST_PREDICTIONS, lambda handle: torch.save(predictions, handle))
        notify(callbacks, RunEnd(run_dir=run_dir, cfg=cfg, kind="linear",
                                 title="fine-tune" if cfg.finetune else "linear probe",
                                 classes=list(data.train.classes)))
    return metrics
