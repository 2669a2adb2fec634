"""Whole models: an encoder plus a head, trained by SupCon or cross-entropy, and their signatures.

:class:`SupConModel` is the paper's encoder + projection network (Khosla et al., 2020, Sec. 3.1);
:class:`CEModel` is the cross-entropy baseline. :func:`model_signature` describes either (or a bare
encoder) so a checkpoint can be matched with a freshly built model before loading.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from supcon.models.heads import HEAD_KINDS, LinearClassifier, ProjectionHead
from supcon.models.init import check_positive_int


def _encoder_out_dim(encoder: object) -> int:
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"encoder must be a torch.nn.Module, got {type(encoder).__name__}")
    out_dim = getattr(encoder, "out_dim", None)
    if isinstance(out_dim, bool) or not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(
            f"encoder must have a positive int attribute out_dim, got {out_dim!r} on {type(encoder).__name__}"
        )
    return out_dim


class _EncoderModel(nn.Module):
    """An encoder with a head on top: holds the encoder and its ``out_dim`` and gives :meth:`embed`.

    Raises:
        ValueError: ``encoder`` is not a module with a positive int ``out_dim``.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.out_dim = _encoder_out_dim(encoder)
        self.encoder = encoder

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder representation, without the head (what downstream evaluation uses).

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, out_dim)`` representations.
        """
        return self.encoder(x)


class SupConModel(_EncoderModel):
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
        super().__init__(encoder)
        if head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, got {head!r}")
        check_positive_int("feat_dim", feat_dim)
        self.head = ProjectionHead(self.out_dim, kind=head, out_dim=feat_dim)
        self.head_kind = head
        self.feat_dim = feat_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised projections.

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, feat_dim)`` unit-norm projections.
        """
        return self.head(self.encoder(x))


class CEModel(_EncoderModel):
    """Encoder followed by a linear classifier, trained end to end with cross-entropy (the baseline).

    Args:
        encoder: module mapping ``(B, C, H, W) -> (B, encoder.out_dim)``; needs an int ``out_dim``.
        num_classes: number of classes.

    Attributes:
        encoder, classifier: the two parts.
        num_classes: the configuration.
        out_dim: ``encoder.out_dim``, the size of :meth:`embed`'s output.

    Raises:
        ValueError: ``encoder`` without a positive int ``out_dim`` or bad ``num_classes``.
    """

    def __init__(self, encoder: nn.Module, num_classes: int) -> None:
        super().__init__(encoder)
        self.classifier = LinearClassifier(self.out_dim, num_classes)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            x: ``(B, C, H, W)`` images.

        Returns:
            ``(B, num_classes)`` logits.
        """
        return self.classifier(self.encoder(x))


def _encoder_signature(encoder: nn.Module) -> dict[str, Any]:
    arch = getattr(encoder, "arch", None)
    signature: dict[str, Any] = {"arch": arch if isinstance(arch, str) else type(encoder).__qualname__}
    for key in ("in_channels", "stem", "width", "out_dim", "image_size"):  # image_size: ViTs only
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
