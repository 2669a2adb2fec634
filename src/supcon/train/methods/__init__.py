"""The training methods, one module each, behind one registry.

A method is a function that trains into a run folder and returns its final metrics. Adding one is a
module here, an entry in :data:`METHODS` and its test. ``stage`` says what a method produces:

* ``"encoder"``: a pretrained encoder + head (SupCon, SimCLR, SupCon + CE) that a linear probe then scores;
* ``"classifier"``: a classifier trained end to end (cross-entropy), scored by itself;
* ``"probe"``: stage 2 on a pretrained checkpoint (linear probe, fine-tuning).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from supcon.config import Config
from supcon.train.methods.ce import train_ce
from supcon.train.methods.common import knn_evaluate
from supcon.train.methods.joint import train_joint
from supcon.train.methods.linear import train_linear
from supcon.train.methods.pretrain import build_supcon_model, pretrain

__all__ = ["Method", "METHODS", "method_config", "pretrain", "train_ce", "train_joint", "train_linear",
           "knn_evaluate", "build_supcon_model"]


@dataclass(frozen=True)
class Method:
    """A registered training method.

    Attributes:
        name: the name users give (``--method``, ``--methods``).
        stage: ``"encoder"``, ``"classifier"`` or ``"probe"`` (see the module docstring).
        checkpoint_kind: the kind of checkpoint it writes.
        train: the function that trains it.
        summary: one line for help texts.
    """

    name: str
    stage: str
    checkpoint_kind: str
    train: Callable[..., dict[str, Any]]
    summary: str


METHODS: dict[str, Method] = {
    "supcon": Method("supcon", "encoder", "pretrain", pretrain, "supervised contrastive pretraining (eq. 2)"),
    "simclr": Method("simclr", "encoder", "pretrain", pretrain, "SimCLR pretraining, no labels (NT-Xent)"),
    "supcon+ce": Method("supcon+ce", "encoder", "pretrain", train_joint,
                        "SupCon + w x cross-entropy of a linear classifier, one stage"),
    "ce": Method("ce", "classifier", "ce", train_ce, "cross-entropy baseline, end to end"),
    "linear": Method("linear", "probe", "linear", train_linear, "linear probe on a frozen encoder"),
    "finetune": Method("finetune", "probe", "linear", train_linear, "fine-tune the whole network"),
}

def method_config(cfg: Config, name: str) -> Config:
    """``cfg`` set up for method ``name`` (``method`` for pretraining, ``finetune`` for probes)."""
    method = METHODS[name]
    if method.stage == "encoder":
        return dataclasses.replace(cfg, method=name)
    if method.stage == "probe":
        return dataclasses.replace(cfg, finetune=name == "finetune")
    return cfg
