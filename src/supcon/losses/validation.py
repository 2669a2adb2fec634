"""The options :func:`supcon.losses.supcon_loss` takes and the checks of its arguments.

Every check raises ``ValueError`` naming the argument, what was expected and what came. The
checks run in a fixed order (features, options, labels and mask, positives cap, extra contrast
rows, finiteness), so that an input with several faults always reports the same one.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = [
    "VARIANTS", "CONTRAST_MODES", "DENOMINATORS", "REDUCTIONS",
    "Variant", "ContrastMode", "Denominator", "Reduction",
]

VARIANTS = ("out", "in")
CONTRAST_MODES = ("all", "one")
DENOMINATORS = ("all", "one_positive", "only_negatives")
REDUCTIONS = ("mean", "sum", "none")

Variant = Literal["out", "in"]
ContrastMode = Literal["all", "one"]
Denominator = Literal["all", "one_positive", "only_negatives"]
Reduction = Literal["mean", "sum", "none"]


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_temperature(temperature: object) -> None:
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")


def _check_choices(variant: str, contrast_mode: str, denominator: str, reduction: str) -> None:
    """The four string options, each against its tuple of choices."""
    _check_choice("variant", variant, VARIANTS)
    _check_choice("contrast_mode", contrast_mode, CONTRAST_MODES)
    _check_choice("denominator", denominator, DENOMINATORS)
    _check_choice("reduction", reduction, REDUCTIONS)


def _check_features(features: Tensor) -> tuple[int, int, int]:
    """Checks the layout of ``features``; returns (batch, views, dim)."""
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    if features.ndim not in (2, 3):
        raise ValueError(
            "features must have shape (batch, views, dim) or (n, dim), "
            f"got {features.ndim} dimensions with shape {tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"features must be a floating-point tensor, got {features.dtype}")
    batch = features.shape[0]
    views = features.shape[1] if features.ndim == 3 else 1
    dim = features.shape[-1]
    if batch < 1 or dim < 1:
        raise ValueError(f"features must be non-empty, got shape {tuple(features.shape)}")
    return batch, views, dim


def _check_options(
    temperature: float, base_temperature: float | None, variant: str, contrast_mode: str,
    denominator: str, reduction: str, chunk_size: int | str | None,
) -> None:
    _check_temperature(temperature)
    if base_temperature is not None and not base_temperature > 0:
        raise ValueError(f"base_temperature must be positive or None, got {base_temperature!r}")
    _check_choices(variant, contrast_mode, denominator, reduction)
    positive_int = (isinstance(chunk_size, int) and not isinstance(chunk_size, bool)
                    and chunk_size > 0)
    if not (chunk_size is None or chunk_size == "auto" or positive_int):
        raise ValueError(f"chunk_size must be None, 'auto' or a positive int, got {chunk_size!r}")


def _check_labels_and_mask(
    features: Tensor, labels: Tensor | None, mask: Tensor | None, batch: int, views: int,
    check_inputs: bool,
) -> None:
    """At most one of labels and mask, each matching the batch; some positive source."""
    if labels is not None and mask is not None:
        raise ValueError("labels and mask are mutually exclusive: pass one of them, got both")
    if labels is not None:
        if labels.ndim not in (1, 2):
            raise ValueError(
                f"labels must be (batch,) classes or (batch, classes) multi-hot, "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.shape[0] != batch:
            raise ValueError(f"labels has {labels.shape[0]} entries, features has {batch} samples")
        if labels.ndim == 1 and labels.is_floating_point():
            raise ValueError(f"labels must be integers when 1-D, got {labels.dtype}")
    if mask is not None:
        if mask.shape != (batch, batch):
            raise ValueError(
                f"mask must have shape (batch, batch) = ({batch}, {batch}), got {tuple(mask.shape)}"
            )
        if check_inputs and mask.dtype != torch.bool and bool((mask < 0).any()):
            raise ValueError("mask must be non-negative (bool or float weights)")
    if labels is None and mask is None and views < 2:
        raise ValueError(
            "labels (or mask) is required when features has fewer than 2 views: "
            f"got shape {tuple(features.shape)} and no labels, so no anchor has a positive"
        )


def _check_positives_cap(positives_cap: int | None, views: int) -> None:
    if positives_cap is None:
        return
    if isinstance(positives_cap, bool) or not isinstance(positives_cap, int) or positives_cap < 0:
        raise ValueError(f"positives_cap must be a non-negative int or None, got {positives_cap!r}")
    if positives_cap % views:
        raise ValueError(
            f"positives_cap must be a multiple of the number of views ({views}), "
            f"got {positives_cap}"
        )


def _check_contrast_labels(
    labels: Tensor | None, contrast_labels: Tensor | None, extra: int
) -> None:
    """``contrast_labels`` goes with ``labels`` and matches their layout over ``extra`` rows."""
    if labels is None:
        if contrast_labels is not None:
            raise ValueError("contrast_labels needs labels for the batch too (got labels=None)")
        return
    if contrast_labels is None:
        raise ValueError("contrast_labels is required with contrast_features when labels are given")
    if contrast_labels.shape[0] != extra or contrast_labels.ndim != labels.ndim or (
        labels.ndim == 2 and contrast_labels.shape[1] != labels.shape[1]
    ):
        raise ValueError(
            f"contrast_labels must match contrast_features ({extra} rows) and labels' layout "
            f"{tuple(labels.shape[1:])}, got shape {tuple(contrast_labels.shape)}"
        )


def _check_contrast(
    contrast_features: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, labels: Tensor | None, mask: Tensor | None, batch: int, dim: int,
) -> None:
    """The extra contrast rows and the labels or mask that go with them."""
    if contrast_features is None:
        if contrast_labels is not None:
            raise ValueError("contrast_labels given without contrast_features")
        if contrast_mask is not None:
            raise ValueError("contrast_mask given without contrast_features")
        return
    if contrast_features.ndim != 2 or contrast_features.shape[1] != dim:
        raise ValueError(
            f"contrast_features must have shape (n_extra, {dim}), "
            f"got {tuple(contrast_features.shape)}"
        )
    extra = contrast_features.shape[0]
    _check_contrast_labels(labels, contrast_labels, extra)
    if contrast_mask is not None:
        if mask is None:
            raise ValueError("contrast_mask goes with mask (got mask=None)")
        if contrast_mask.shape != (batch, extra):
            raise ValueError(
                f"contrast_mask must have shape ({batch}, {extra}), "
                f"got {tuple(contrast_mask.shape)}"
            )


def _check_finite(features: Tensor, contrast_features: Tensor | None) -> None:
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contains NaN or Inf values")
    if contrast_features is not None and not bool(torch.isfinite(contrast_features).all()):
        raise ValueError("contrast_features contains NaN or Inf values")


def _validate(
    features: Tensor, labels: Tensor | None, mask: Tensor | None, temperature: float,
    base_temperature: float | None, variant: str, contrast_mode: str, positives_cap: int | None,
    denominator: str, contrast_features: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, chunk_size: int | str | None, reduction: str,
    check_inputs: bool,
) -> None:
    """Every check of :func:`supcon.losses.supcon_loss`'s arguments, in a fixed order."""
    batch, views, dim = _check_features(features)
    _check_options(temperature, base_temperature, variant, contrast_mode, denominator, reduction,
                   chunk_size)
    _check_labels_and_mask(features, labels, mask, batch, views, check_inputs)
    _check_positives_cap(positives_cap, views)
    _check_contrast(contrast_features, contrast_labels, contrast_mask, labels, mask, batch, dim)
    if check_inputs:
        _check_finite(features, contrast_features)
