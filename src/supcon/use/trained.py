"""What a checkpoint offers a user of its encoder: the encoder, its preprocessing, and its heads.

:func:`load_trained` reads any supcon checkpoint (pretrain, CE, linear probe or fine-tune) through
:mod:`supcon.checkpoint` and returns a :class:`TrainedModel`: the encoder with the training split's
normalisation, image size and channels, plus the classifier (classifier checkpoints) and the
projection head (pretrain checkpoints, and linear probes through their pretrain checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from supcon.augment import Normalize
from supcon.checkpoint import CheckpointError, checkpoint_entry, load_checkpoint, load_classifier, load_supcon_model

__all__ = ["TrainedModel", "load_trained", "require_classifier"]


@dataclass
class TrainedModel:
    """The parts of a checkpoint that use its encoder, in eval mode on the CPU.

    Attributes:
        path: the checkpoint read.
        kind: ``"pretrain"``, ``"ce"`` or ``"linear"`` (a linear probe or a fine-tune).
        method: the training method (``"supcon"``, ``"simclr"``, ``"ce"``...).
        encoder: ``(B, C, S, S)`` normalised float images -> ``(B, D)`` representations.
        normalize: the training split's per-channel normalisation.
        channels, image_size: the images the encoder was trained on (``C``, ``S``).
        classes: the training classes' names.
        classifier: ``(B, D) -> (B, K)`` logits, for ``ce`` and ``linear`` checkpoints, else ``None``.
        head: the projection head ``(B, D) -> (B, F)`` (unit norm): always for pretrain checkpoints, for
            linear probes when asked for, else ``None``.
        config: the training config, as stored.
        source_checkpoint: the pretrain checkpoint a linear probe's encoder came from, or ``None``.
    """

    path: Path
    kind: str
    method: str
    encoder: nn.Module
    normalize: Normalize
    channels: int
    image_size: int
    classes: list[str]
    classifier: nn.Module | None = None
    head: nn.Module | None = None
    config: dict[str, Any] = field(default_factory=dict)
    source_checkpoint: Path | None = None

    @property
    def is_finetune(self) -> bool:
        """A ``linear`` checkpoint that trained its own encoder (no pretrain checkpoint behind it)."""
        return self.kind == "linear" and self.source_checkpoint is None


def _data_info(state: Mapping[str, Any], path: Path) -> tuple[Normalize, int, int, list[str]]:
    """Normalisation, channels, image size and classes a checkpoint records about its training data."""
    mean = checkpoint_entry(state, path, "normalization", "mean")
    std = checkpoint_entry(state, path, "normalization", "std")
    channels = checkpoint_entry(state, path, "channels")
    image_size = checkpoint_entry(state, path, "image_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (channels, image_size)):
        raise CheckpointError(f"{path}: channels {channels!r} and image_size {image_size!r} must be positive ints")
    try:
        normalize = Normalize(mean, std)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its 'normalization' entry is not usable: {exc}") from None
    classes = [str(c) for c in state.get("classes", [])]
    count = state.get("num_classes")
    if not classes and isinstance(count, int) and count > 0:  # checkpoints without names: "0", "1", ...
        classes = [str(k) for k in range(count)]
    return normalize, channels, image_size, classes


def load_trained(path: str | Path, *, projection: bool = False) -> TrainedModel:
    """The encoder of any supcon checkpoint, its preprocessing and its heads.

    Args:
        path: a pretrain, CE, linear-probe or fine-tune ``checkpoint.pt``.
        projection: also load the projection head (pretrain checkpoints, or a linear probe's
            pretrain checkpoint).

    Raises:
        CheckpointError: not a readable supcon checkpoint, or ``projection`` asked of a checkpoint
            without a projection head (CE, fine-tune), naming the kind and what to pass instead.
    """
    path = Path(path)
    state = load_checkpoint(path)
    kind = str(state.get("kind"))
    if projection and kind not in ("pretrain", "linear"):
        raise CheckpointError(f"{path} is a {kind!r} checkpoint: it has no projection head; "
                              "drop --projection or pass a pretrain checkpoint")
    normalize, channels, size, classes = _data_info(state, path)
    head = None
    if kind == "pretrain" or projection:
        model, _ = load_supcon_model(path)  # a fine-tune (no head) is refused there
        head = model.head
        if kind == "pretrain":
            return TrainedModel(path, kind, str(state.get("method", "?")), model.encoder, normalize, channels, size,
                                classes, head=head, config=dict(state.get("config", {})))
    classifier = load_classifier(path)
    source = classifier.info.get("source_checkpoint")
    return TrainedModel(path, kind, str(classifier.info.get("method", "?")), classifier.encoder, normalize,
                        channels, size, classes, classifier=classifier.classifier, head=head,
                        config=dict(classifier.info["config"]), source_checkpoint=Path(source) if source else None)


def require_classifier(model: TrainedModel, command: str) -> nn.Module:
    """``model.classifier``; a pretrain checkpoint is refused naming the commands that fit it.

    Raises:
        CheckpointError: ``model`` is a pretrain checkpoint (encoder and projection head only).
    """
    if model.classifier is None:
        raise CheckpointError(
            f"{model.path} is a pretrain checkpoint (encoder and projection head, no classifier): `supcon "
            f"{command}` needs a linear-probe, fine-tune or CE checkpoint; train a linear probe first with "
            f"`supcon linear --checkpoint {model.path}`, or use `supcon embed` for its representations")
    return model.classifier
