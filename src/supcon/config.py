"""One flat, typed configuration for every command: YAML defaults, CLI overrides.

A config is a :class:`Config` dataclass. ``load_config(path)`` reads a YAML mapping whose keys
must be field names (an unknown key is an error naming it); the CLI then overrides single
fields with ``--field-name value`` flags generated from the same dataclass, and the resolved
config is written next to the results as ``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from supcon.models import ARCHITECTURES, is_vit

__all__ = ["Config", "ConfigError", "load_config", "config_from_dict", "config_to_dict", "known_config_values",
           "save_config", "read_yaml_mapping", "ce_learning_rate", "ce_epoch_count", "FIELD_HELP",
           "PRETRAIN_METHODS", "RUN_METHODS", "AUGMENT_CHOICES", "SAMPLERS", "CLASS_WEIGHTS",
           "DEFAULT_RUN_METHODS"]

#: Contrastive pretraining methods (``--method``); ``supcon+ce`` adds a cross-entropy classifier
#: trained in the same stage (:mod:`supcon.train.methods.joint`).
PRETRAIN_METHODS: tuple[str, ...] = ("supcon", "simclr", "supcon+ce")
#: Methods `supcon run` and `supcon sweep` compare: the contrastive ones (pretrain + linear probe)
#: and the cross-entropy baseline.
RUN_METHODS: tuple[str, ...] = (*PRETRAIN_METHODS, "ce")
#: What `supcon run` trains when --methods is not given (supcon+ce only when asked for).
DEFAULT_RUN_METHODS: tuple[str, ...] = ("supcon", "simclr", "ce")
AUGMENT_CHOICES: tuple[str, ...] = ("sim", "autoaugment", "randaugment", "stacked", "none")
#: How training batches are built (``--sampler``, see :mod:`supcon.train.sampler`).
SAMPLERS: tuple[str, ...] = ("random", "class-balanced", "m-per-class")
#: Per-class loss weights (``--class-weights``, see :func:`supcon.train.methods.common.class_weights`).
CLASS_WEIGHTS: tuple[str, ...] = ("none", "inverse", "effective-number")


class ConfigError(ValueError):
    """A config file or override that does not fit :class:`Config`."""


@dataclass
class Config:
    """Every knob of a supcon run. Field docs are the CLI's help text."""

    # data
    dataset: str = field(default="digits", metadata={"help": "digits | idx:DIR | cifar10:DIR | cifar100:DIR | folder:DIR | npz:FILE"})
    image_size: int | None = field(default=None, metadata={"help": "resize images to this side (default: the dataset's)"})
    download: bool = field(default=False, metadata={"help": "fetch CIFAR if missing (needs internet)"})
    test_fraction: float = field(default=0.2, metadata={"help": "held-out fraction for datasets without a test split"})
    label_fraction: float | None = field(default=None, metadata={"help": "use a class-balanced fraction of the training labels"})
    imbalance_ratio: float | None = field(default=None, metadata={"help": "long-tailed view of the training split: class c keeps n_max x R^(-c/(C-1)) images (CIFAR-10-LT profile; test split untouched)"})
    skip_bad_images: bool = field(default=False, metadata={"help": "folder datasets: leave corrupt or truncated images out (their count is logged) instead of failing"})
    # model
    arch: str = field(default="resnet18", metadata={"help": " | ".join(ARCHITECTURES)})
    stem: str = field(default="cifar", metadata={"help": "cifar (3x3, no max-pool) or imagenet (7x7 + max-pool)"})
    width: int = field(default=1, metadata={"help": "ResNet width multiplier"})
    head: str = field(default="mlp", metadata={"help": "projection head: mlp or linear"})
    feat_dim: int = field(default=128, metadata={"help": "projection dimension"})
    # pretraining
    method: str = field(default="supcon", metadata={"help": "supcon | simclr | supcon+ce (pretrain)"})
    epochs: int = field(default=100, metadata={"help": "pretraining / CE epochs"})
    batch_size: int = field(default=256, metadata={"help": "global batch size (images, not views)"})
    lr: float = field(default=0.5, metadata={"help": "peak learning rate per 256 images (the run uses lr x batch_size / 256 under lr_scaling=linear)"})
    lr_scaling: str = field(default="linear", metadata={"help": "linear (lr, ce_lr and linear_lr are per 256 images and scale with the global batch) or none (used as given)"})
    optimizer: str = field(default="auto", metadata={"help": "auto (adamw for ViTs, else sgd; resolved when the config is built) | sgd | lars | adamw (no decay for norms, biases, position embeddings, class token)"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum"})
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay"})
    warmup_epochs: float | None = field(default=None, metadata={"help": "linear warm-up epochs (default: pretraining warms up for 10% of its epochs, at most 10; CE and probes do not)"})
    schedule: str = field(default="cosine", metadata={"help": "cosine | constant | step"})
    temperature: float = field(default=0.1, metadata={"help": "loss temperature"})
    variant: str = field(default="out", metadata={"help": "SupCon variant: out (eq. 2) or in (eq. 3)"})
    views: int = field(default=2, metadata={"help": "augmented views per image"})
    augment: str = field(default="sim", metadata={"help": "sim | autoaugment | randaugment | stacked | none"})
    flip: bool = field(default=True, metadata={"help": "horizontal flips (off for digits)"})
    blur: bool = field(default=False, metadata={"help": "Gaussian blur in SimAugment"})
    crop_min: float = field(default=0.2, metadata={"help": "RandomResizedCrop minimum scale"})
    online_probe: bool = field(default=False, metadata={"help": "train a linear probe on detached features during pretraining"})
    queue_size: int = field(default=0, metadata={"help": "momentum-encoder memory queue size (0: off)"})
    key_momentum: float = field(default=0.999, metadata={"help": "EMA momentum of the key encoder"})
    sync_bn: bool = field(default=False, metadata={"help": "SyncBatchNorm under torchrun"})
    ce_weight: float = field(default=1.0, metadata={"help": "supcon+ce: weight w of the classifier's cross-entropy (loss = supcon + w x CE)"})
    ce_detach: bool = field(default=False, metadata={"help": "supcon+ce: the classifier sees stop-gradient features (an online probe) instead of training the encoder"})
    # batches and imbalance
    sampler: str = field(default="random", metadata={"help": "training batches (pretraining, CE): random | class-balanced | m-per-class"})
    m_per_class: int = field(default=4, metadata={"help": "m-per-class sampler: images per class in a batch (>= 2, divides batch_size)"})
    class_weights: str = field(default="none", metadata={"help": "per-class loss weights (CE, probe, SupCon anchors): none | inverse | effective-number"})
    cb_beta: float = field(default=0.9999, metadata={"help": "effective-number class weights: beta in [0, 1)"})
    # linear probe / fine-tune
    linear_epochs: int = field(default=30, metadata={"help": "linear-probe epochs"})
    linear_lr: float = field(default=0.1, metadata={"help": "linear-probe learning rate per 256 images"})
    linear_batch_size: int = field(default=256, metadata={"help": "linear-probe batch size"})
    linear_augment: str = field(default="none", metadata={"help": "augmentation while training the probe (none: cached features)"})
    finetune: bool = field(default=False, metadata={"help": "linear: train the whole network instead of a frozen encoder"})
    # cross-entropy baseline
    ce_lr: float | None = field(default=None, metadata={"help": "CE learning rate per 256 images (default: lr)"})
    ce_epochs: int | None = field(default=None, metadata={"help": "CE epochs (default: epochs)"})
    # kNN
    knn_k: int = field(default=20, metadata={"help": "neighbours for the kNN classifier"})
    # system
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    amp: str = field(default="auto", metadata={"help": "auto (bf16 on CUDA) | bf16 | off"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads for torch (default: torch's choice)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    channels_last: bool = field(default=True, metadata={"help": "channels_last memory format on CUDA and CPU (faster convolutions)"})
    loss_chunk: str = field(default="auto", metadata={"help": "loss path: auto | dense | an int block size"})
    log_every: int = field(default=50, metadata={"help": "steps between progress-bar loss updates (host syncs)"})
    plots: bool = field(default=True, metadata={"help": "write PNG plots (loss curves, t-SNE)"})
    tsne_points: int = field(default=600, metadata={"help": "test points in the t-SNE plot (0: no t-SNE plot; else at least 2)"})
    progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})

    def __post_init__(self) -> None:
        if self.optimizer == "auto" and isinstance(self.arch, str):
            self.optimizer = "adamw" if is_vit(self.arch) else "sgd"
        validate(self)


FIELD_HELP = {f.name: f.metadata.get("help", "") for f in fields(Config)}

_CHOICES = {
    "arch": ARCHITECTURES,
    "method": PRETRAIN_METHODS,
    "augment": AUGMENT_CHOICES,
    "linear_augment": AUGMENT_CHOICES,
    "stem": ("cifar", "imagenet"),
    "head": ("mlp", "linear"),
    "optimizer": ("sgd", "lars", "adamw"),
    "schedule": ("cosine", "constant", "step"),
    "variant": ("out", "in"),
    "amp": ("auto", "bf16", "off"),
    "lr_scaling": ("linear", "none"),
    "sampler": SAMPLERS,
    "class_weights": CLASS_WEIGHTS,
}


def _float_fields() -> list[str]:
    """The fields typed ``float`` or ``float | None``."""
    return [name for name, hint in _field_types().items() if hint is float or float in typing.get_args(hint)]


def validate(cfg: Config) -> None:
    """Raises ConfigError naming the first field whose value is out of range."""
    for name in _float_fields():
        value = getattr(cfg, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value}")
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise ConfigError(f"{name} must be one of {choices}, got {getattr(cfg, name)!r}")
    positive = ["epochs", "batch_size", "width", "feat_dim", "views", "linear_epochs",
                "linear_batch_size", "knn_k", "log_every"]
    for name in positive:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ["lr", "temperature", "linear_lr"]:
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {getattr(cfg, name)}")
    if cfg.ce_lr is not None and not cfg.ce_lr > 0:
        raise ConfigError(f"ce_lr must be > 0, got {cfg.ce_lr}")
    if cfg.ce_epochs is not None and cfg.ce_epochs < 1:
        raise ConfigError(f"ce_epochs must be >= 1, got {cfg.ce_epochs}")
    for name in ["weight_decay", "warmup_epochs"]:
        if getattr(cfg, name) is not None and not getattr(cfg, name) >= 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if not 0 <= cfg.momentum < 1:
        raise ConfigError(f"momentum must be in [0, 1), got {cfg.momentum}")
    if not 0 <= cfg.key_momentum < 1:
        raise ConfigError(f"key_momentum must be in [0, 1), got {cfg.key_momentum}")
    if cfg.queue_size < 0:
        raise ConfigError(f"queue_size must be >= 0, got {cfg.queue_size}")
    if cfg.queue_size and cfg.queue_size < cfg.batch_size:
        raise ConfigError(
            f"queue_size ({cfg.queue_size}) must be at least batch_size ({cfg.batch_size})"
        )
    if not 0 < cfg.test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {cfg.test_fraction}")
    if cfg.label_fraction is not None and not 0 < cfg.label_fraction <= 1:
        raise ConfigError(f"label_fraction must be in (0, 1], got {cfg.label_fraction}")
    if not 0 < cfg.crop_min <= 1:
        raise ConfigError(f"crop_min must be in (0, 1], got {cfg.crop_min}")
    if cfg.loss_chunk not in ("auto", "dense") and not str(cfg.loss_chunk).isdigit():
        raise ConfigError(f"loss_chunk must be auto, dense or a positive int, got {cfg.loss_chunk!r}")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads must be >= 1, got {cfg.threads}")
    if cfg.image_size is not None and cfg.image_size < 1:
        raise ConfigError(f"image_size must be >= 1, got {cfg.image_size}")
    if cfg.views < 2:  # every method in PRETRAIN_METHODS contrasts an image's views
        raise ConfigError(
            f"views must be >= 2 for method {cfg.method!r}: contrastive pretraining needs at least two "
            f"augmented views of each image (with one view an image has no positive of its own), got {cfg.views}"
        )
    _validate_imbalance(cfg)
    _validate_joint(cfg)
    if cfg.tsne_points < 0 or cfg.tsne_points == 1:
        raise ConfigError(f"tsne_points must be 0 (no t-SNE plot) or at least 2, got {cfg.tsne_points}")


def _validate_imbalance(cfg: Config) -> None:
    """The batch-construction and imbalance fields (errors name the flag)."""
    if cfg.sampler == "m-per-class":
        if cfg.m_per_class < 2:
            raise ConfigError(f"--m-per-class must be >= 2 (an anchor needs a same-class positive), got {cfg.m_per_class}")
        if cfg.batch_size % cfg.m_per_class:
            raise ConfigError(f"--batch-size ({cfg.batch_size}) must be divisible by --m-per-class ({cfg.m_per_class})")
    elif cfg.m_per_class < 1:
        raise ConfigError(f"--m-per-class must be >= 1, got {cfg.m_per_class}")
    if not 0 <= cfg.cb_beta < 1:
        raise ConfigError(f"--cb-beta must be in [0, 1), got {cfg.cb_beta}")
    if cfg.imbalance_ratio is not None and not cfg.imbalance_ratio >= 1:
        raise ConfigError(f"--imbalance-ratio must be >= 1 (largest over smallest class), got {cfg.imbalance_ratio}")


def _validate_joint(cfg: Config) -> None:
    """The supcon+ce fields (errors name the flag)."""
    if not cfg.ce_weight >= 0:
        raise ConfigError(f"--ce-weight must be >= 0, got {cfg.ce_weight}")
    if cfg.method == "supcon+ce" and cfg.online_probe:
        raise ConfigError("--online-probe does not go with --method supcon+ce: its classifier is the probe "
                          "(add --ce-detach for stop-gradient features)")


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)}


def coerce(name: str, value: Any) -> Any:
    """Converts a YAML or command-line value to the type of field ``name``."""
    types = _field_types()
    if name not in types:
        raise ConfigError(f"unknown config key {name!r}; valid keys: {', '.join(sorted(types))}")
    hint = types[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if not optional:
            raise ConfigError(f"{name} cannot be null")
        return None
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} expects {getattr(base, '__name__', base)}, got {value!r}") from None


def known_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that are Config fields: a checkpoint written by another version
    may carry keys this one does not know, and they must not fail its loading."""
    known = {f.name for f in fields(Config)}
    return {k: v for k, v in values.items() if k in known}


def config_from_dict(values: dict[str, Any], base: Config | None = None) -> Config:
    """A Config from ``base`` (or the defaults) with ``values`` applied; unknown keys error."""
    current = dataclasses.asdict(base) if base is not None else {}
    for key, value in values.items():
        current[key] = coerce(key, value)
    return Config(**current)


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping a YAML file holds (an empty file is an empty mapping).

    Raises:
        ConfigError: a missing or unreadable file, a YAML syntax error or unsafe tag, text that
            is not UTF-8, or a document that is not a mapping; the message names ``what`` and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ConfigError(f"{what} {path} is not valid YAML: {detail}") from None
    except OSError as exc:
        raise ConfigError(f"{what} {path} cannot be read: {exc.strerror}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of keys to values")
    return data


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Reads a YAML config (a flat mapping of field names) and applies ``overrides``."""
    data = read_yaml_mapping(path)
    data.update(overrides or {})
    return config_from_dict(data)


def ce_learning_rate(values: Mapping[str, Any]) -> float | None:
    """The cross-entropy baseline's learning rate: ``ce_lr``, or ``lr`` when it is unset."""
    return values.get("ce_lr") if values.get("ce_lr") is not None else values.get("lr")


def ce_epoch_count(values: Mapping[str, Any]) -> int | None:
    """The cross-entropy baseline's epochs: ``ce_epochs``, or ``epochs`` when it is unset."""
    return values.get("ce_epochs") if values.get("ce_epochs") is not None else values.get("epochs")


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path, effective: Mapping[str, Any] | None = None) -> None:
    """Writes ``cfg`` as YAML; ``effective`` (the values the run derived from it: scaled learning
    rate, the batch actually used, warm-up) goes in a comment block above, so the file still loads
    as a config."""
    header = "".join(f"# effective {key}: {value}\n" for key, value in (effective or {}).items())
    Path(path).write_text(header + yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
