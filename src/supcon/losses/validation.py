"""The options :func:`supcon.losses.supcon_loss` takes and the checks of its arguments.

Every check raises ``ValueError`` naming the argument, what was expected and what came. The
checks run in a fixed order (features, options, labels and mask, positives cap, extra contrast
rows, values), so that an input with several faults always reports the same one.

Label rules: ``labels`` are ``(batch,)`` class indices (any integer dtype, each >= 0) or
``(batch, classes)`` multi-hot rows of 0/1 (bool or an integer dtype); float labels are refused,
also 2-D ones (soft, weighted positives go in ``mask``). ``contrast_labels`` follow the same rules,
except that a negative class index means "no label" (:data:`supcon.memory.UNLABELED`, -1, what a
memory queue stores for SimCLR keys): such a row is a negative of every anchor. Lists, tuples and
numpy arrays are converted with ``torch.as_tensor``. The value checks (negative classes, multi-hot
entries other than 0/1, negative mask weights, NaN/Inf features) read the tensors back, so they
run only with ``check_inputs=True``.
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


def _as_tensor(name: str, value: object) -> Tensor | None:
    """``value`` as a tensor (lists, tuples and numpy arrays through ``torch.as_tensor``), None as None."""
    if value is None or isinstance(value, Tensor):
        return value
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{name} must be a torch.Tensor (or a list of numbers), got "
                         f"{type(value).__name__}: {exc}") from None


def _check_device(name: str, tensor: Tensor | None) -> None:
    if tensor is not None and tensor.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (shapes only, no values): the loss needs real "
                         "data; move it to cpu or cuda first")


def _check_features(features: Tensor) -> tuple[int, int, int]:
    """Checks the layout of ``features``; returns (batch, views, dim)."""
    if not isinstance(features, Tensor):
        raise ValueError(f"features must be a torch.Tensor, got {type(features).__name__}")
    _check_device("features", features)
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


def _check_label_dtype(name: str, labels: Tensor) -> None:
    """Class indices or 0/1 multi-hot: bool or integer, never float (2-D floats were soft labels)."""
    if not (labels.is_floating_point() or labels.is_complex()):
        return
    if labels.ndim == 1:
        raise ValueError(f"{name} must be integers when 1-D, got {labels.dtype}")
    raise ValueError(
        f"{name} must be (batch, classes) multi-hot of 0/1 as bool or integers when 2-D, got "
        f"{labels.dtype}: for soft (weighted) positives pass mask= (batch, batch) weights instead")


def _check_label_values(name: str, labels: Tensor, unlabeled_allowed: bool) -> None:
    """Values (a device sync): class indices >= 0 (negative = no label where allowed), multi-hot 0/1."""
    if labels.numel() == 0 or labels.dtype == torch.bool:
        return
    if labels.ndim == 2:
        if bool(((labels != 0) & (labels != 1)).any()):
            raise ValueError(f"{name} as (batch, classes) multi-hot must hold only 0 and 1, "
                             f"found {labels[(labels != 0) & (labels != 1)][0].item()}")
    elif not unlabeled_allowed and bool((labels < 0).any()):
        raise ValueError(f"{name} must be class indices >= 0, found {int(labels.min())} (only "
                         "contrast_labels may hold -1, 'no label')")


def _check_labels_and_mask(
    features: Tensor, labels: Tensor | None, mask: Tensor | None, batch: int, views: int,
    check_inputs: bool,
) -> None:
    """At most one of labels and mask, each matching the batch; some positive source."""
    if labels is not None and mask is not None:
        raise ValueError("labels and mask are mutually exclusive: pass one of them, got both")
    if labels is not None:
        _check_device("labels", labels)
        if labels.ndim not in (1, 2):
            raise ValueError(
                f"labels must be (batch,) classes or (batch, classes) multi-hot, "
                f"got shape {tuple(labels.shape)}"
            )
        if labels.shape[0] != batch:
            raise ValueError(f"labels has {labels.shape[0]} entries, features has {batch} samples")
        _check_label_dtype("labels", labels)
        if check_inputs:
            _check_label_values("labels", labels, unlabeled_allowed=False)
    if mask is not None:
        _check_device("mask", mask)
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
    labels: Tensor | None, contrast_labels: Tensor | None, extra: int, check_inputs: bool
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
    _check_device("contrast_labels", contrast_labels)
    _check_label_dtype("contrast_labels", contrast_labels)
    if check_inputs:
        _check_label_values("contrast_labels", contrast_labels, unlabeled_allowed=True)


def _check_contrast(
    contrast_features: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, labels: Tensor | None, mask: Tensor | None, batch: int, dim: int,
    check_inputs: bool,
) -> None:
    """The extra contrast rows and the labels or mask that go with them."""
    if contrast_features is None:
        if contrast_labels is not None:
            raise ValueError("contrast_labels given without contrast_features")
        if contrast_mask is not None:
            raise ValueError("contrast_mask given without contrast_features")
        return
    if not isinstance(contrast_features, Tensor):
        raise ValueError(f"contrast_features must be a torch.Tensor, got {type(contrast_features).__name__}")
    _check_device("contrast_features", contrast_features)
    if contrast_features.ndim != 2 or contrast_features.shape[1] != dim:
        raise ValueError(
            f"contrast_features must have shape (n_extra, {dim}), "
            f"got {tuple(contrast_features.shape)}"
        )
    extra = contrast_features.shape[0]
    _check_contrast_labels(labels, contrast_labels, extra, check_inputs)
    if contrast_mask is not None:
        if mask is None:
            raise ValueError("contrast_mask goes with mask (got mask=None)")
        if contrast_mask.shape != (batch, extra):
            raise ValueError(
                f"contrast_mask must have shape ({batch}, {extra}), "
                f"got {tuple(contrast_mask.shape)}"
            )


def _all_finite(x: Tensor) -> bool:
    """Whether every entry is finite: one sum (NaN and Inf carry through it) and, only where
    that sum is not finite (a bad entry, or finite entries whose sum overflows), the exact
    element-wise check."""
    return bool(torch.isfinite(x.detach().sum())) or bool(torch.isfinite(x).all())


def _check_finite(features: Tensor, contrast_features: Tensor | None) -> None:
    if not _all_finite(features):
        raise ValueError("features contains NaN or Inf values")
    if contrast_features is not None and not _all_finite(contrast_features):
        raise ValueError("contrast_features contains NaN or Inf values")


def _validate(
    features: Tensor, labels: Tensor | None, mask: Tensor | None, temperature: float,
    base_temperature: float | None, variant: str, contrast_mode: str, positives_cap: int | None,
    denominator: str, contrast_features: Tensor | None, contrast_labels: Tensor | None,
    contrast_mask: Tensor | None, chunk_size: int | str | None, reduction: str,
    check_inputs: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """Every check of :func:`supcon.losses.supcon_loss`'s arguments, in a fixed order.

    Returns:
        ``(labels, mask, contrast_labels, contrast_mask)`` as tensors (lists converted).
    """
    batch, views, dim = _check_features(features)
    _check_options(temperature, base_temperature, variant, contrast_mode, denominator, reduction,
                   chunk_size)
    labels, mask = _as_tensor("labels", labels), _as_tensor("mask", mask)
    contrast_labels = _as_tensor("contrast_labels", contrast_labels)
    contrast_mask = _as_tensor("contrast_mask", contrast_mask)
    _check_labels_and_mask(features, labels, mask, batch, views, check_inputs)
    _check_positives_cap(positives_cap, views)
    _check_contrast(contrast_features, contrast_labels, contrast_mask, labels, mask, batch, dim,
                    check_inputs)
    if check_inputs:
        _check_finite(features, contrast_features)
    return labels, mask, contrast_labels, contrast_mask
