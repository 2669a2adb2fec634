"""supcon: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020, arXiv 2004.11362).

The public API, re-exported here:

* losses: :class:`SupConLoss`, :func:`supcon_loss` (L_out / L_in / SimCLR, dense and tiled);
* models: :func:`build_encoder`, :class:`SupConModel`, :class:`CEModel`, :class:`ProjectionHead`,
  :class:`LinearClassifier`;
* data and augmentation: :func:`load_dataset`, :func:`build_augmentation`, :func:`make_views`;
* training: :func:`pretrain`, :func:`train_linear`, :func:`train_ce` and :class:`Config`;
* using a trained encoder: :func:`load_encoder`, :func:`load_classifier` (from a ``supcon export``
  folder; :func:`supcon.checkpoint.load_classifier` reads a checkpoint); :func:`run_ood` (out-of-distribution
  scores and their AUROC / AUPR / FPR at 95 % TPR, :mod:`supcon.use.ood`).

The training names (and ``supcon.methods``) load :mod:`supcon.train` on first use, not at import, so a
program that only loads an export never imports the training code.
"""

import importlib

from supcon.augment import AUGMENTATIONS, Normalize, build_augmentation, make_views
from supcon.config import Config, load_config
from supcon.data import ImageDataset, load_dataset
from supcon.losses import SupConLoss, supcon_loss
from supcon.models import (ARCHITECTURES, CEModel, LinearClassifier, ProjectionHead, SupConModel,
                           build_encoder)
from supcon.use.export import load_encoder
from supcon.use.export import load_exported_classifier as load_classifier
from supcon.use.ood import run_ood

__all__ = [
    "SupConLoss", "supcon_loss",
    "ARCHITECTURES", "build_encoder", "SupConModel", "CEModel", "ProjectionHead", "LinearClassifier",
    "AUGMENTATIONS", "build_augmentation", "make_views", "Normalize",
    "ImageDataset", "load_dataset",
    "Config", "load_config", "pretrain", "train_linear", "train_ce",
    "load_encoder", "load_classifier", "run_ood",
]
__version__ = "0.1.0"


def _with_plots(name: str):
    def train(cfg: Config, *args, **kwargs):
        from supcon.report.plots import training_plots  # matplotlib: only when training from here

        kwargs.setdefault("callbacks", training_plots(cfg))
        return getattr(importlib.import_module("supcon.train.methods"), name)(cfg, *args, **kwargs)

    train.__name__ = train.__qualname__ = name
    train.__doc__ = (f"``supcon.train.methods.{name}`` with the loss curves and t-SNE plots of "
                     "``cfg.plots`` (pass ``callbacks=[]`` for none).")
    return train


pretrain = _with_plots("pretrain")
train_linear = _with_plots("train_linear")
train_ce = _with_plots("train_ce")


def __getattr__(name: str):
    """``supcon.methods`` (the training registry) and ``supcon.train``, imported on first use (see above)."""
    if name in ("methods", "train"):
        return importlib.import_module(f"supcon.train{'.methods' if name == 'methods' else ''}")
    raise AttributeError(f"module 'supcon' has no attribute {name!r}")
