"""Tests for supcon.losses.validation: bad input raises ValueError naming the argument."""

from __future__ import annotations

import math

import pytest
import torch

from supcon import SupConLoss, supcon_loss
from loss_cases import randn


F = randn(4, 2, 3, seed=55)
LABELS = torch.tensor([0, 1, 0, 1])

BAD_INPUTS = {
    "features_1d": (dict(features=torch.ones(3, dtype=torch.float64), labels=LABELS[:3]),
                    "features"),
    "features_4d": (dict(features=torch.ones(4, 2, 3, 1, dtype=torch.float64), labels=LABELS),
                    "features"),
    "labels_count": (dict(labels=torch.tensor([0, 1, 0])), "labels"),
    "labels_count_multi_hot": (dict(labels=torch.ones(5, 3, dtype=torch.long)), "labels"),
    "mask_count": (dict(mask=torch.ones(3, 3)), "mask"),
    "mask_not_square": (dict(mask=torch.ones(4, 3)), "mask"),
    "labels_and_mask": (dict(labels=LABELS, mask=torch.ones(4, 4)),
                        r"(?s)(labels.*mask|mask.*labels)"),
    "nan_features": (dict(features=F.clone().index_fill_(0, torch.tensor([1]), math.nan),
                          labels=LABELS), "NaN|Inf"),
    "inf_features": (dict(features=F.clone().index_fill_(0, torch.tensor([2]), math.inf),
                          labels=LABELS), "NaN|Inf"),
    "temperature_zero": (dict(labels=LABELS, temperature=0.0), "temperature"),
    "temperature_negative": (dict(labels=LABELS, temperature=-0.1), "temperature"),
    "variant": (dict(labels=LABELS, variant="middle"), "variant"),
    "contrast_mode": (dict(labels=LABELS, contrast_mode="some"), "contrast_mode"),
    "denominator": (dict(labels=LABELS, denominator="positives"), "denominator"),
    "reduction": (dict(labels=LABELS, reduction="max"), "reduction"),
    "one_view_no_labels_2d": (dict(features=randn(4, 3, seed=56)), "labels"),
    "one_view_no_labels_3d": (dict(features=randn(4, 1, 3, seed=57)), "labels"),
    "negative_mask": (dict(mask=torch.tensor([[1.0, -0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0],
                                              [0, 0, 0, 1]])), "mask"),
    "positives_cap_not_multiple": (dict(labels=LABELS, positives_cap=3), "positives_cap"),
    "positives_cap_negative": (dict(labels=LABELS, positives_cap=-2), "positives_cap"),
    "contrast_features_dim": (dict(labels=LABELS, contrast_features=torch.ones(5, 4),
                                   contrast_labels=torch.zeros(5, dtype=torch.long)),
                              "contrast_features"),
    "contrast_labels_without_contrast_features": (
        dict(labels=LABELS, contrast_labels=torch.zeros(5, dtype=torch.long)), "contrast_labels"),
    "labels_without_contrast_labels": (
        dict(labels=LABELS, contrast_features=torch.ones(5, 3, dtype=torch.float64)),
        "contrast_labels"),
    "chunk_size_zero": (dict(labels=LABELS, chunk_size=0), "chunk_size"),
    "chunk_size_negative": (dict(labels=LABELS, chunk_size=-4), "chunk_size"),
    "chunk_size_string": (dict(labels=LABELS, chunk_size="big"), "chunk_size"),
    "chunk_size_float": (dict(labels=LABELS, chunk_size=2.5), "chunk_size"),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_value_error_naming_the_argument(name: str) -> None:
    kwargs, pattern = BAD_INPUTS[name]
    kwargs = dict(kwargs)
    features = kwargs.pop("features", F)
    with pytest.raises(ValueError, match=pattern):
        supcon_loss(features, **kwargs)


@pytest.mark.parametrize("name", ["temperature_zero", "variant", "contrast_mode", "denominator",
                                  "reduction", "chunk_size_zero", "positives_cap_not_multiple"])
def test_module_rejects_bad_options(name: str) -> None:
    kwargs, pattern = BAD_INPUTS[name]
    kwargs = dict(kwargs)
    labels = kwargs.pop("labels")
    temperature = kwargs.pop("temperature", 0.1)
    with pytest.raises(ValueError, match=pattern):
        SupConLoss(temperature, **kwargs)(F, labels)


# Labels are class indices or 0/1 multi-hot; anything else is refused, never silently reinterpreted.
BAD_LABELS = {
    "float_multi_hot": (dict(labels=torch.tensor([[1.0, 0], [0, 1], [1, 0], [0.5, 0.5]])),
                        r"labels must be .*multi-hot of 0/1 .*float32.*pass mask="),
    "integer_multi_hot_not_0_1": (dict(labels=torch.tensor([[1, 0], [0, 2], [1, 0], [0, 1]])),
                                  r"labels .*multi-hot must hold only 0 and 1, found 2"),
    "negative_class": (dict(labels=torch.tensor([0, -1, 0, 1])), r"labels must be class indices >= 0, found -1"),
    "float_contrast_labels": (dict(labels=LABELS, contrast_features=randn(3, 3, seed=58),
                                   contrast_labels=torch.tensor([0.0, 1.0, 1.0])),
                              "contrast_labels must be integers"),
    "float_multi_hot_contrast_labels": (
        dict(labels=torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]]), contrast_features=randn(2, 3, seed=59),
             contrast_labels=torch.tensor([[1.0, 0.0], [0.0, 1.0]])), "contrast_labels .*pass mask="),
    "multi_hot_contrast_labels_not_0_1": (
        dict(labels=torch.tensor([[1, 0], [0, 1], [1, 0], [0, 1]]), contrast_features=randn(2, 3, seed=60),
             contrast_labels=torch.tensor([[1, 0], [0, -1]])), "contrast_labels .*only 0 and 1, found -1"),
    "labels_not_numbers": (dict(labels=["a", "b", "a", "b"]), r"labels must be a torch.Tensor \(or a list"),
    "meta_features": (dict(features=torch.empty(4, 2, 3, device="meta"), labels=LABELS), "features .*meta"),
    "meta_labels": (dict(labels=LABELS.to("meta")), "labels .*meta"),
    "meta_contrast_features": (dict(labels=LABELS, contrast_features=torch.empty(3, 3, device="meta"),
                                    contrast_labels=torch.tensor([0, 1, 1])), "contrast_features .*meta"),
    "contrast_features_not_a_tensor": (dict(contrast_features=[[0.0, 1.0, 0.0]]), "contrast_features must be a torch.Tensor"),
}


@pytest.mark.parametrize("name", list(BAD_LABELS))
def test_bad_labels_raise_value_error_naming_the_argument(name: str) -> None:
    kwargs = dict(BAD_LABELS[name][0])
    features = kwargs.pop("features", F)
    with pytest.raises(ValueError, match=BAD_LABELS[name][1]):
        supcon_loss(features, **kwargs)


def test_bool_and_integer_multi_hot_are_the_same_labels() -> None:
    multi_hot = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
    as_bool = supcon_loss(F, multi_hot.bool())
    torch.testing.assert_close(supcon_loss(F, multi_hot), as_bool)
    torch.testing.assert_close(supcon_loss(F, multi_hot.to(torch.uint8)), as_bool)


def test_python_lists_are_converted() -> None:
    expected = supcon_loss(F, LABELS)
    torch.testing.assert_close(supcon_loss(F, LABELS.tolist()), expected)
    torch.testing.assert_close(supcon_loss(F, (0, 1, 0, 1)), expected)
    mask = (LABELS[:, None] == LABELS[None, :]).tolist()
    torch.testing.assert_close(supcon_loss(F, mask=mask), supcon_loss(F, mask=torch.tensor(mask)))
    extra = randn(3, 3, seed=61)
    torch.testing.assert_close(supcon_loss(F, LABELS.tolist(), contrast_features=extra, contrast_labels=[1, 0, 5]),
                               supcon_loss(F, LABELS, contrast_features=extra, contrast_labels=torch.tensor([1, 0, 5])))


def test_unlabeled_contrast_rows_are_negatives_of_every_anchor() -> None:
    """contrast_labels = -1 (memory.UNLABELED) matches no class, like a class no anchor has."""
    from supcon.memory import UNLABELED

    extra = randn(3, 3, seed=62)
    unlabeled = supcon_loss(F, LABELS, contrast_features=extra, contrast_labels=torch.tensor([1, UNLABELED, UNLABELED]))
    unseen_class = supcon_loss(F, LABELS, contrast_features=extra, contrast_labels=torch.tensor([1, 7, 9]))
    torch.testing.assert_close(unlabeled, unseen_class)


def test_value_checks_are_skipped_without_check_inputs() -> None:
    """check_inputs=False promises no device sync: the value checks (not the dtype ones) are off."""
    supcon_loss(F, torch.tensor([0, -1, 0, 1]), check_inputs=False)
    with pytest.raises(ValueError, match="pass mask="):
        supcon_loss(F, torch.ones(4, 2), check_inputs=False)
