"""What every training method shares: starting a run, its augmentation, and finishing an encoder run."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from supcon import distributed as dist_utils
from supcon.augment import Normalize, build_augmentation
from supcon.config import Config, ConfigError
from supcon.data import DataSplits, load_splits
from supcon.metrics import balanced_accuracy, extract_features, knn_accuracy, per_class_accuracy
from supcon.runfiles import METRICS_JSON, RunDirError, claim_run_dir, write_json_atomic
from supcon.train.callbacks import RunEnd, TrainCallback, notify
from supcon.train.runtime import Runtime, seed_everything, setup_runtime

__all__ = ["start_run", "run_inputs", "build_augment", "input_transform", "data_info", "knn_evaluate",
           "finish_encoder_run", "loss_chunk", "scaled_lr", "fitted_batch", "pretrain_warmup_epochs",
           "classifier_loss_bound", "effective_values", "LR_REFERENCE_BATCH", "class_weights", "run_class_weights",
           "class_accuracy_metrics"]

log = logging.getLogger(__name__)


def run_inputs(cfg: Config, *extra: str | Path | None) -> list[Path]:
    """The files a run reads: its dataset's path (``npz:FILE``, ``folder:DIR``...) and ``extra``
    (a checkpoint, the --config file). ``--overwrite`` refuses an --out that is or holds one."""
    _, sep, where = cfg.dataset.partition(":")
    paths = [Path(where.strip()).expanduser()] if sep and where.strip() else []
    return paths + [Path(item) for item in extra if item is not None]


@contextmanager
def start_run(cfg: Config, run_dir: str | Path, kind: str, resume: bool, overwrite: bool,
              data: DataSplits | None, inputs: Sequence[str | Path] = ()) -> Iterator[tuple[Runtime, Path, DataSplits]]:
    """For the ``with`` block: the runtime, the run directory (claimed and locked by rank 0, see
    :func:`supcon.runfiles.claim_run_dir`), seeded RNGs and the data.

    Under torchrun every rank learns whether rank 0 could claim the folder, and all fail alike.
    """
    rt = setup_runtime(cfg)
    with ExitStack() as claim:
        error = None
        try:
            path = claim.enter_context(claim_run_dir(run_dir, kind, resume=resume, overwrite=overwrite,
                                                     inputs=run_inputs(cfg, *inputs), is_main=rt.is_main))
        except RunDirError as exc:
            error = str(exc)
        first = next((e for e in dist_utils.all_gather_object(error) if e), None)  # [error] without torchrun
        if first is not None:
            raise RunDirError(first)
        seed_everything(cfg.seed, rt.rank)
        yield rt, path, data or load_splits(cfg)


def build_augment(cfg: Config, data: DataSplits, name: str | None = None) -> nn.Module:
    """The training augmentation ``name`` (default ``cfg.augment``) for the data's images."""
    return build_augmentation(name or cfg.augment, data.image_size, data.channels,
                              crop_scale=(cfg.crop_min, 1.0), blur=cfg.blur, flip=cfg.flip)


def input_transform(data: DataSplits, rt: Runtime) -> Normalize:
    """The training split's normalisation, on the run's device."""
    return Normalize(data.mean, data.std).to(rt.device)


def loss_chunk(cfg: Config) -> int | str | None:
    """``cfg.loss_chunk`` as :func:`supcon.losses.supcon_loss`'s ``chunk_size``."""
    if cfg.loss_chunk == "dense":
        return None
    if cfg.loss_chunk == "auto":
        return "auto"
    return int(cfg.loss_chunk)


def data_info(data: DataSplits) -> dict[str, Any]:
    """What a checkpoint records about the data it was trained on."""
    return {
        "normalization": {"mean": list(data.mean), "std": list(data.std)},
        "num_classes": data.num_classes,
        "classes": list(data.train.classes),
        "channels": data.channels,
        "image_size": data.image_size,
        # training images actually used: fewer than the split's under cfg.label_fraction
        "train_images": int(data.train.images.shape[0]),
    }


def _knn_with_test_features(encoder: nn.Module, test_f: Tensor, data: DataSplits, normalize: Normalize,
                            rt: Runtime, k: int) -> float:
    train_f = extract_features(encoder, data.train.images, normalize, rt.inference())
    return knn_accuracy(train_f, data.train.labels, test_f, data.test.labels, data.num_classes, k=k)


def knn_evaluate(encoder: nn.Module, data: DataSplits, rt: Runtime, cfg: Config,
                 normalize: Normalize | None = None) -> float:
    """kNN top-1 (%) of an encoder's representations: train split as memory, test split queries."""
    normalize = normalize or input_transform(data, rt)
    test_f = extract_features(encoder, data.test.images, normalize, rt.inference())
    return _knn_with_test_features(encoder, test_f, data, normalize, rt, cfg.knn_k)


def finish_encoder_run(encoder: nn.Module, metrics: dict[str, Any], data: DataSplits, normalize: Normalize,
                       rt: Runtime, cfg: Config, run_dir: Path, kind: str, title: str,
                       callbacks: Sequence[TrainCallback]) -> None:
    """After pretraining or CE (rank 0): kNN accuracy and metrics.json, then the callbacks, all
    from one pass of the encoder over the test split."""
    test_f = extract_features(encoder, data.test.images, normalize, rt.inference())
    metrics["knn_acc"] = _knn_with_test_features(encoder, test_f, data, normalize, rt, cfg.knn_k)
    write_json_atomic(run_dir / METRICS_JSON, metrics)
    notify(callbacks, RunEnd(run_dir=run_dir, cfg=cfg, kind=kind, title=title, test_features=test_f.cpu(),
                             test_labels=data.test.labels, classes=list(data.train.classes)))


#: The batch a configured learning rate refers to under ``lr_scaling: linear`` (Goyal et al. 2017).
LR_REFERENCE_BATCH = 256


def scaled_lr(cfg: Config, lr: float, batch_size: int) -> float:
    """The learning rate a run uses: ``lr x batch_size / 256`` (global batch) under linear scaling."""
    return lr * batch_size / LR_REFERENCE_BATCH if cfg.lr_scaling == "linear" else lr


def fitted_batch(batch_size: int, n_train: int, world_size: int, flag: str = "--batch-size") -> int:
    """``batch_size``, shrunk (with a warning) to the largest that the training set fills.

    Raises:
        ConfigError: a training set smaller than the number of processes.
    """
    if batch_size <= n_train:
        return batch_size
    fitted = n_train - n_train % world_size
    if fitted < max(1, world_size):
        raise ConfigError(f"the training set has {n_train} images, fewer than the {world_size} processes")
    log.warning("%s %d is larger than the training set (%d images): using batches of %d", flag, batch_size,
                n_train, fitted)
    return fitted


def pretrain_warmup_epochs(cfg: Config) -> float:
    """Warm-up of contrastive pretraining: ``cfg.warmup_epochs``, by default 10% of the epochs (at most 10)."""
    return cfg.warmup_epochs if cfg.warmup_epochs is not None else min(10.0, 0.1 * cfg.epochs)


def classifier_loss_bound(num_classes: int) -> float:
    """A cross-entropy that no learning run reaches: ten times chance (``ln C``), at least 10."""
    return max(10.0 * math.log(num_classes), 10.0)


def effective_values(batch_size: int, asked_batch: int, lr: float, base_lr: float, warmup: float) -> dict[str, Any]:
    """What a run derived from its config, for the log and config.yaml."""
    values: dict[str, Any] = {"batch_size": batch_size if batch_size == asked_batch
                              else f"{batch_size} (asked {asked_batch}, larger than the training set)"}
    values["lr"] = f"{lr:.6g}" + (f" ({base_lr:g} x {batch_size}/{LR_REFERENCE_BATCH})" if lr != base_lr else "")
    values["warmup_epochs"] = f"{warmup:g}"
    return values


def class_weights(counts: Tensor, kind: str, beta: float = 0.9999) -> Tensor | None:
    """Per-class loss weights from the training counts ``n_c`` (``(C,)``), normalised to mean 1 over
    the classes present (absent classes get 0); None for ``kind="none"``.

    - ``inverse``: ``w_c = N / (C n_c)``.
    - ``effective-number`` (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of
      Samples"): ``w_c = (1 - beta) / (1 - beta^{n_c})``.
    """
    if kind == "none":
        return None
    counts = counts.double()
    present = counts > 0
    if kind == "inverse":
        raw = counts.sum() / (present.sum() * counts.clamp_min(1))
    elif kind == "effective-number":
        raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts.clamp_min(1)))
    else:
        raise ConfigError(f"--class-weights must be one of none, inverse, effective-number, got {kind!r}")
    raw = torch.where(present, raw, torch.zeros_like(raw))
    return (raw * present.sum() / raw.sum()).float()


def run_class_weights(cfg: Config, data: DataSplits, rt: Runtime) -> Tensor | None:
    """``cfg.class_weights`` for the training split's class counts, on the run's device."""
    counts = torch.bincount(data.train.labels.long().cpu(), minlength=data.num_classes)
    weights = class_weights(counts, cfg.class_weights, cfg.cb_beta)
    return weights.to(rt.device) if weights is not None else None


def class_accuracy_metrics(predictions: Tensor, labels: Tensor, num_classes: int) -> dict[str, Any]:
    """Balanced accuracy (%) and the per-class accuracies (%, None for a class absent from ``labels``)."""
    per_class = per_class_accuracy(predictions, labels, num_classes)
    return {"balanced_acc": balanced_accuracy(predictions, labels),
            "per_class_acc": [None if math.isnan(a) else a for a in per_class.tolist()]}
