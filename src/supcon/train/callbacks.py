"""What a finished training run hands the code that called it (plots, reports, logging).

Training never imports the report layer: a caller that wants plots passes callbacks, e.g.
:func:`supcon.report.plots.training_plots`, and each is called once per finished run (rank 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from supcon.config import Config

__all__ = ["RunEnd", "TrainCallback", "notify"]


@dataclass
class RunEnd:
    """A finished training run.

    Attributes:
        run_dir: its folder (config.yaml, metrics.csv, metrics.json, checkpoint.pt are written).
        cfg: its configuration.
        kind: the checkpoint kind: ``pretrain``, ``ce`` or ``linear``.
        title: a human name for the trained encoder ("supcon", "cross-entropy", ...).
        test_features: the encoder's representations of the test split, ``(N, D)``, when the run
            trained an encoder (pretrain, CE); None for a linear probe.
        test_labels: ``(N,)`` labels of those features.
        classes: class names.
    """

    run_dir: Path
    cfg: Config
    kind: str
    title: str
    test_features: Tensor | None = None
    test_labels: Tensor | None = None
    classes: list[str] = field(default_factory=list)


TrainCallback = Callable[[RunEnd], None]


def notify(callbacks: Sequence[TrainCallback], end: RunEnd) -> None:
    """Calls every callback with ``end``, in order."""
    for callback in callbacks:
        callback(end)
