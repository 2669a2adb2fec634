"""supcon: Supervised Contrastive Learning (Khosla et al., NeurIPS 2020, arXiv 2004.11362).

The public API, re-exported here:

* losses: :class:`SupConLoss`, :func:`supcon_loss` (L_out / L_in / SimCLR, dense and tiled);
* models: :func:`build_encoder`, :class:`SupConModel`, :class:`CEModel`, :class:`ProjectionHead`,
  :class:`LinearClassifier`;
* data and augmentation: :func:`load_dataset`, :func:`build_augmentation`, :func:`make_views`;
* training: :func:`pretrain`, :func:`train_linear`, :func:`train_ce` and :class:`Config`.
"""

from supcon.augment import AUGMENTATIONS, Normalize, build_augmentation, make_views
from supcon.config import Config, load_config
from supcon.data import ImageDataset, load_dataset
from supcon.losses import SupConLoss, supcon_loss
from supcon.models import (ARCHITECTURES, CEModel, LinearClassifier, ProjectionHead, SupConModel,
                           build_encoder)

__all__ = [
    "SupConLoss", "supcon_loss",
    "ARCHITECTURES", "build_encoder", "SupConModel", "CEModel", "ProjectionHead", "LinearClassifier",
    "AUGMENTATIONS", "build_augmentation", "make_views", "Normalize",
    "ImageDataset", "load_dataset",
    "Config", "load_config", "pretrain", "train_linear", "train_ce",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    """The training entry points import lazily (they pull in plotting and scikit-learn)."""
    if name in ("pretrain", "train_linear", "train_ce"):
        from supcon.train import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'supcon' has no attribute {name!r}")
