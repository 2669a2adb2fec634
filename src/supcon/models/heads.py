"""Projection heads, classifiers and the encoder + head models trained by SupCon and cross-entropy.

Khosla et al. (2020, Sec. 3.1) follow the encoder with a projection network ``Proj(.)``: an MLP with
one hidden layer of the encoder's size and an output of 128, whose output is normalised to the unit
hypersphere before the loss. The projection is discarded after training; a linear classifier on the
frozen encoder representation measures its quality.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.resnet import _check_positive_int

HEAD_KINDS: tuple[str, ...] = ("mlp", "linear")


def _encoder_out_dim(encoder: object) -> int:
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    out_dim = getattr(encoder, "out_dim", None)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(
            f"encoder must have a positive int attribute out_dim, got {out_dim!r} on {type(encoder).__name__}"
        )
    return out_dim


class ProjectionHead(nn.Module):
    """Projection network mapping representations onto the unit hypersphere.

    Args:
        in_dim: size of the encoder representation.
        kind: ``"mlp"`` (Linear(in_dim, hidden_dim) -> ReLU -> Linear(hidden_dim, out_dim), the paper's
            head) or ``"linear"`` (a single Linear(in_dim, out_dim)).
        out_dim: size of the projection (128 in the paper).
        hidden_dim: hidden size of the MLP; defaults to ``in_dim``. Ignored for ``"linear"``.

    Shapes:
        ``forward``: ``(B, in_dim) -> (B, out_dim)``, every row of unit L2 norm.

    Raises:
        ValueError: unknown ``kind`` or a size that is not a positive int.
    """

    def __init__(self, in_dim: int, kind: str = "mlp", out_dim: int = 128, hidden_dim: int | None = None) -> None:
        super().__init__()
        _check_positive_int("in_dim", in_dim)
        _check_positive_int("out_dim", out_dim)
        if kind not in HEAD_KINDS:
            raise ValueError(f"kind must be one of {HEAD_KINDS}, got {kind!r}")
        if hidden_dim is None:
            hidden_dim = in_dim
        _check_positive_int("hidden_dim", hidden_dim)
        self.kind = kind
        self.in_dim = in_dim
        self.out_dim = out_dim
        if kind == "mlp":
            self.hidden_dim: int | None = hidden_dim
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
            )
        else:
            self.hidden_dim = None
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project and L2-normalise.

        Args:
            x: ``(B, in_dim)`` representations.

        Returns:
            ``(B, out_dim)`` unit-norm projections.
        """
        return F.normalize(self.net(x), dim=1)


class LinearClassifier(nn.Linear):
    """A single linear layer producing class logits (the linear-evaluation protocol).

    Args:
        in_dim: size of the input representation.
        num_classes: number of classes.

    Shapes:
        ``forward``: ``(B, in_dim) -> (B, num_classes)`` logits.

    Raises:
        ValueError: ``in_dim`` or ``num_classes`` not a positive int.
    """

    def __init__(self, in_dim: int, num_classes: int) -> None:
        _check_positive_int("in_dim", in_dim)
        _check_positive_int("num_classes", num_classes)
        super().__init__(in_dim, num_classes)
        self.in_dim = in_dim
        self.num_classes = num_classes


class SupConModel(nn.Module):
    """Encoder followed by a projection head, trained with a contrastive loss.

    Args:
        encoder: module mapping ``(B, C, H, W) -> (B, encoder.out_dim)``; needs an int ``out_dim``.
        head: projection kind, ``"mlp"`` or ``"linear"`` (see :class:`ProjectionHead`).
        feat_dim: size of the projection.

    Attributes:
        encoder: the encoder.
        head: the :class:`ProjectionHead`.
        head_kind, feat_dim: the configuration.
        out_dim: ``encoder.out_dim``, the size of :meth:`embed`'s output.

    Raises:
        ValueError: ``encoder`` without a positive int ``out_dim``, unknown ``head``, bad ``feat_dim``.
    """

    def __init__(self, encoder: nn.Module, head: str = "mlp", feat_dim: int = 128) -> None:
        super().__init__()
        out_dim = _encoder_out_dim(encoder)
        if head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {head!r}")
        _check_positive_int("feat_dim", feat_dim)
        self.encoder = encoder
        self.head = ProjectionHead(out_dim, kind=head, out_dim=feat_dim)
        self.head_kind = head
        self.feat_dim = feat_dim
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised projections.

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, feat_dim)`` unit-norm projections.
        """
        return self.head(self.encoder(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder representation, without the head (what downstream evaluation uses).

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, out_dim)`` representations.
        """
        return self.encoder(x)


class CEModel(nn.Module):
    """Encoder followed by a linear classifier, trained end to end with cross-entropy (the baseline).

    Args:
        encoder: module mapping ``(B, C, H, W) -> (B, encoder.out_dim)``; needs an int ``out_dim``.
        num_classes: number of classes.

    Attributes:
        encoder, classifier: the two parts.
        num_classes: the configuration.
        out_dim: ``encoder.out_dim``.

    Raises:
        ValueError: ``encoder`` without a positive int ``out_dim`` or bad ``num_classes``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__()
        out_dim = _encoder_out_dim(encoder)
        self.encoder = encoder
        self.classifier = LinearClassifier(out_dim, num_classes)
        self.num_classes = num_classes
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, num_classes)`` logits.
        """
        return self.classifier(self.encoder(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder representation.

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, out_dim)`` representations.
        """
        return self.encoder(x)


def _encoder_signature(encoder: nn.Module) -> dict[str, Any]:
    arch = getattr(encoder, "arch", None)
    signature: dict[str, Any] = {"arch": arch if isinstance(arch, str) else type(encoder).__qualname__}
    for key in ("in_channels", "stem", "width", "out_dim"):
        if hasattr(encoder, key):
            value = getattr(encoder, key)
            if value is None or isinstance(value, (str, int)):
                signature[key] = value
    return signature


def model_signature(model: nn.Module) -> dict[str, Any]:
    """Describe a model's architecture as a small JSON/YAML-friendly dict.

    Two models with equal signatures have state dicts of the same keys and shapes, so a checkpoint's
    stored signature can be compared with a freshly built model's before loading.

    Args:
        model: an encoder from :func:`supcon.models.build_encoder`, a :class:`SupConModel`, a
            :class:`CEModel`, or any module with an ``out_dim`` (described by its class name).

    Returns:
        ``{"model": "encoder" | "supcon" | "ce", "arch", "in_channels", "stem", "width", "out_dim"}``
        plus ``"head"`` and ``"feat_dim"`` for a SupConModel and ``"num_classes"`` for a CEModel. An
        encoder without a string ``arch`` is named by its class; keys it does not record are left out.

    Raises:
        ValueError: ``model`` is not a torch.nn.Module.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, SupConModel):
        return {
            "model": "supcon",
            **_encoder_signature(model.encoder),
            "head": model.head_kind,
            "feat_dim": model.feat_dim,
        }
    if isinstance(model, CEModel):
        return {"model": "ce", **_encoder_signature(model.encoder), "num_classes": model.num_classes}
    return {"model": "encoder", **_encoder_signature(model)}
