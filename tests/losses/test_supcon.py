"""Tests for supcon.losses.supcon: supcon_loss and SupConLoss, every option on every path.

Each case runs on the dense path and on the tiled path (see loss_cases.PATHS) against the float64
loop reference (tests/reference_losses.py), in value and in gradient; closed forms, invariances,
reductions and the module wrapper complete it.
"""

from __future__ import annotations

import math

import pytest
import torch

from supcon import SupConLoss, supcon_loss
from loss_cases import (ATOL, CASES, CONTRAST_MODES, DENOMINATORS, PATHS, RTOL, VARIANTS,
                        check_against_reference, make_case, randn, weighted_mask)
from reference_losses import reference_nt_xent, reference_supcon_loss


# ---------------------------------------------------------------------------------------------
# Every option against the reference, dense and tiled
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case_name", CASES)
def test_matches_reference(
    case_name: str, variant: str, denominator: str, contrast_mode: str
) -> None:
    case = make_case(case_name)
    check_against_reference(
        case, dict(variant=variant, denominator=denominator, contrast_mode=contrast_mode)
    )


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "case_name", ["labels_v2", "labels_2d_singletons", "mask_zero_diagonal", "extra_cap"]
)
def test_reductions_match_reference(case_name: str, variant: str, reduction: str) -> None:
    for contrast_mode in CONTRAST_MODES:
        check_against_reference(
            make_case(case_name),
            dict(variant=variant, reduction=reduction, contrast_mode=contrast_mode),
        )


def test_reduction_none_shape_and_zero_for_anchors_without_positives() -> None:
    case = make_case("labels_2d_singletons")
    for chunk_size in PATHS:
        per_anchor = supcon_loss(case.features, case.labels, reduction="none",
                                 chunk_size=chunk_size)
        assert per_anchor.shape == (8,)
        lonely = torch.tensor([3, 4, 6])
        assert torch.all(per_anchor[lonely] == 0.0)
        others = torch.tensor([0, 1, 2, 5, 7])
        assert torch.all(per_anchor[others] > 0.0)
        mean = supcon_loss(case.features, case.labels, chunk_size=chunk_size)
        torch.testing.assert_close(mean, per_anchor[others].mean(), rtol=RTOL, atol=ATOL)
    features = randn(5, 3, 4, seed=40)
    labels = torch.tensor([0, 1, 0, 1, 2])
    one = supcon_loss(features, labels, contrast_mode="one", reduction="none")
    assert one.shape == (5,)
    everyone = supcon_loss(features, labels, reduction="none")
    assert everyone.shape == (15,)
    # Anchors are view-major: the first 5 anchors of "all" are the anchors of "one".
    torch.testing.assert_close(one, everyone[:5], rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", PATHS)
@pytest.mark.parametrize("contrast_mode", CONTRAST_MODES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_identical_embeddings_give_log_n_minus_one(variant, contrast_mode, chunk_size) -> None:
    batch, views = 6, 2
    features = torch.ones(batch, views, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    n = batch * views
    loss = supcon_loss(features, labels, variant=variant, contrast_mode=contrast_mode,
                       chunk_size=chunk_size)
    torch.testing.assert_close(loss, torch.tensor(math.log(n - 1), dtype=torch.float64),
                               rtol=RTOL, atol=ATOL)
    scaled = supcon_loss(features, labels, temperature=0.2, base_temperature=0.07,
                         variant=variant, contrast_mode=contrast_mode, chunk_size=chunk_size)
    torch.testing.assert_close(scaled, torch.tensor(0.2 / 0.07 * math.log(n - 1),
                                                    dtype=torch.float64), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("chunk_size", PATHS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_orthogonal_classes_closed_form(temperature: float, variant: str, chunk_size) -> None:
    """Each class's rows are one basis vector: P positives at s = 1/t, the rest at s = 0."""
    classes, per_class, views = 3, 2, 2
    labels = torch.arange(classes).repeat(per_class)
    basis = torch.eye(classes, dtype=torch.float64)
    features = basis[labels][:, None, :].expand(-1, views, -1).contiguous()
    n = classes * per_class * views
    positives = per_class * views - 1
    expected = -1 / temperature + math.log(
        positives * math.exp(1 / temperature) + (n - 1 - positives)
    )
    loss = supcon_loss(features, labels, temperature=temperature, variant=variant,
                       chunk_size=chunk_size)
    torch.testing.assert_close(loss, torch.tensor(expected, dtype=torch.float64),
                               rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("chunk_size", PATHS)
def test_simclr_equals_nt_xent(chunk_size) -> None:
    features = randn(6, 2, 5, seed=41).requires_grad_(True)
    loss = supcon_loss(features, temperature=0.2, chunk_size=chunk_size)
    (grad,) = torch.autograd.grad(loss, features)
    reference_features = features.detach().clone().requires_grad_(True)
    expected = reference_nt_xent(reference_features[:, 0], reference_features[:, 1], 0.2)
    (expected_grad,) = torch.autograd.grad(expected, reference_features)
    torch.testing.assert_close(loss, expected, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(grad, expected_grad, rtol=RTOL, atol=ATOL)
    # One class per sample is the same thing as no labels.
    with_labels = supcon_loss(features, torch.arange(6), temperature=0.2, chunk_size=chunk_size)
    torch.testing.assert_close(with_labels, expected, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# Invariances and the choice of path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["labels", "mask", "simclr", "extra"])
def test_permuting_the_batch_leaves_the_loss_unchanged(kind: str, variant: str, chunk_size) -> None:
    batch, views = 8, 2
    features = randn(batch, views, 4, seed=45)
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 3, 2])
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(46))
    inputs: dict = {}
    permuted: dict = {}
    if kind in ("labels", "extra"):
        inputs["labels"], permuted["labels"] = labels, labels[perm]
    if kind == "mask":
        mask = weighted_mask(batch, seed=47)
        inputs["mask"], permuted["mask"] = mask, mask[perm][:, perm]
    if kind == "extra":
        extra = dict(contrast_features=randn(5, 4, seed=48),
                     contrast_labels=torch.tensor([1, 1, 0, 4, 2]))
        inputs.update(extra)
        permuted.update(extra)
    options = dict(variant=variant, chunk_size=chunk_size)
    loss = supcon_loss(features, **inputs, **options)
    loss_permuted = supcon_loss(features[perm], **permuted, **options)
    torch.testing.assert_close(loss_permuted, loss, rtol=RTOL, atol=ATOL)
    # Per anchor: row v * B + b of the permuted batch is row v * B + perm[b] of the original.
    per_anchor = supcon_loss(features, **inputs, **options, reduction="none").view(views, batch)
    per_anchor_permuted = supcon_loss(features[perm], **permuted, **options, reduction="none")
    torch.testing.assert_close(per_anchor_permuted.view(views, batch), per_anchor[:, perm],
                               rtol=RTOL, atol=ATOL)


def test_auto_chunk_size_equals_dense_on_small_input() -> None:
    case = make_case("extra_labels")
    check_against_reference(case, dict(variant="in"), paths=["auto"])
    auto = supcon_loss(case.features, **case.inputs(), chunk_size="auto")
    dense = supcon_loss(case.features, **case.inputs(), chunk_size=None)
    torch.testing.assert_close(auto, dense, rtol=RTOL, atol=ATOL)


def test_check_inputs_false_gives_the_same_loss() -> None:
    case = make_case("mask_weighted")
    checked = supcon_loss(case.features, **case.inputs())
    unchecked = supcon_loss(case.features, **case.inputs(), check_inputs=False)
    torch.testing.assert_close(unchecked, checked, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# Low precision input, no positive at all
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 4])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input(dtype: torch.dtype, chunk_size) -> None:
    features = randn(6, 2, 8, seed=53).to(dtype).requires_grad_(True)
    contrast_features = randn(4, 8, seed=54).to(dtype).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    contrast_labels = torch.tensor([2, 0, 3, 1])
    loss = supcon_loss(features, labels, contrast_features=contrast_features,
                       contrast_labels=contrast_labels, chunk_size=chunk_size)
    assert torch.isfinite(loss)
    loss.backward()
    assert features.grad.dtype == dtype
    assert contrast_features.grad.dtype == dtype
    assert torch.isfinite(features.grad.float()).all()
    # Computed in float32 internally: the same as float32 on the same (upcast) values.
    features32 = features.detach().float().requires_grad_(True)
    loss32 = supcon_loss(features32, labels, contrast_features=contrast_features.detach().float(),
                         contrast_labels=contrast_labels, chunk_size=chunk_size)
    loss32.backward()
    torch.testing.assert_close(loss.float(), loss32, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features.grad.float(), features32.grad.to(dtype).float(),
                               rtol=2e-2, atol=1e-3)


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_no_anchor_with_a_positive_raises(chunk_size) -> None:
    with pytest.raises(ValueError):
        supcon_loss(randn(5, 3, seed=58), torch.arange(5), chunk_size=chunk_size)


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case_name", ["labels_v2", "extra_mask", "extra_simclr", "cap_v3"])
def test_module_equals_functional(case_name: str) -> None:
    case = make_case(case_name)
    options = dict(variant="in", denominator="one_positive", contrast_mode="one",
                   base_temperature=0.07, chunk_size=3, **case.options)
    temperature = options.pop("temperature", 0.2)
    module = SupConLoss(temperature, **options)
    assert isinstance(module, torch.nn.Module)
    assert list(module.parameters()) == []
    expected = supcon_loss(case.features, **case.inputs(), temperature=temperature, **options)
    actual = module(case.features, case.labels, case.mask,
                    contrast_features=case.contrast_features, contrast_labels=case.contrast_labels,
                    contrast_mask=case.contrast_mask)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    reference = reference_supcon_loss(case.features, **case.inputs(), temperature=temperature,
                                      **{k: v for k, v in options.items() if k != "chunk_size"})
    torch.testing.assert_close(actual, reference, rtol=RTOL, atol=ATOL)


def test_module_defaults_equal_functional_defaults() -> None:
    case = make_case("labels_v3")
    torch.testing.assert_close(SupConLoss()(case.features, case.labels),
                               supcon_loss(case.features, case.labels), rtol=0, atol=0)
