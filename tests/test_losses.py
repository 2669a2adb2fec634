"""Tests for supcon.losses: every path and option against the float64 loop reference.

The reference (tests/reference_losses.py) is written from the paper's equations with one Python
loop per anchor and per term; here the dense path (chunk_size=None) and the tiled path (small
chunk sizes, many blocks, blocks that do not divide the row count) must match it in value and in
gradient with respect to both features and contrast_features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch

from supcon import SupConLoss, supcon_loss
from reference_losses import reference_nt_xent, reference_supcon_loss

# Dense, then tiled with blocks of 3 and 5 rows (neither divides every row count used here).
PATHS = [None, 3, 5]
VARIANTS = ["out", "in"]
DENOMINATORS = ["all", "only_negatives", "one_positive"]
CONTRAST_MODES = ["all", "one"]

RTOL = 1e-10
ATOL = 1e-12


@dataclass
class Case:
    """Inputs and options of one loss call (float64)."""

    features: torch.Tensor
    labels: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    contrast_features: torch.Tensor | None = None
    contrast_labels: torch.Tensor | None = None
    contrast_mask: torch.Tensor | None = None
    options: dict = field(default_factory=dict)

    def inputs(self) -> dict:
        return dict(
            labels=self.labels, mask=self.mask, contrast_features=self.contrast_features,
            contrast_labels=self.contrast_labels, contrast_mask=self.contrast_mask,
        )


def _randn(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def _weighted_mask(batch: int, seed: int, zero_diagonal: bool = False) -> torch.Tensor:
    """Non-negative float weights with about a third of the entries zero."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.rand(batch, batch, generator=generator, dtype=torch.float64) * 2
    weights[torch.rand(batch, batch, generator=generator) < 0.35] = 0.0
    weights.fill_diagonal_(0.0 if zero_diagonal else 1.0)
    weights[:, 0] = 0.0  # everybody has at least one negative sample
    weights[0, 1] = 0.7  # and sample 0 at least one positive
    return weights


def _multi_hot(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def make_case(name: str) -> Case:
    """The input settings every option combination runs on."""
    if name == "simclr_v2":
        return Case(_randn(5, 2, 4, seed=1))
    if name == "simclr_v3":
        return Case(_randn(4, 3, 5, seed=2))
    if name == "labels_v2":
        return Case(_randn(6, 2, 4, seed=3), labels=torch.tensor([0, 1, 0, 2, 1, 0]))
    if name == "labels_v3":
        return Case(_randn(5, 3, 3, seed=4), labels=torch.tensor([1, 1, 0, 2, 2]))
    if name == "labels_2d_singletons":  # rows 3, 4 and 6 have no positive
        return Case(_randn(8, 4, seed=5), labels=torch.tensor([0, 1, 0, 2, 3, 1, 4, 0]))
    if name == "multi_hot":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0]])
        return Case(_randn(6, 2, 4, seed=6), labels=labels)
    if name == "multi_hot_bool_2d":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0],
                             [0, 0, 0]]).bool()  # the last row shares nothing: no positive
        return Case(_randn(7, 5, seed=7), labels=labels)
    if name == "mask_weighted":
        return Case(_randn(5, 2, 4, seed=8), mask=_weighted_mask(5, seed=8))
    if name == "mask_weighted_v3":
        return Case(_randn(4, 3, 3, seed=9), mask=_weighted_mask(4, seed=9))
    if name == "mask_zero_diagonal":  # own views are negatives; some samples have no positive
        mask = _weighted_mask(5, seed=10, zero_diagonal=True)
        mask[3] = 0.0
        return Case(_randn(5, 2, 4, seed=10), mask=mask)
    if name == "mask_bool":
        labels = torch.tensor([0, 1, 0, 1, 2, 0])
        mask = labels[:, None] == labels[None, :]
        mask[0, 2] = False  # not symmetric
        return Case(_randn(6, 2, 3, seed=11), mask=mask)
    if name in ("cap_0", "cap_2", "cap_4"):
        labels = torch.tensor([0, 0, 1, 0, 0, 1, 0])
        return Case(_randn(7, 2, 4, seed=12), labels=labels,
                    options=dict(positives_cap=int(name[-1])))
    if name == "cap_v3":
        labels = torch.tensor([2, 2, 1, 2, 1, 2])
        return Case(_randn(6, 3, 3, seed=13), labels=labels, options=dict(positives_cap=3))
    if name == "cap_weighted_mask":
        mask = _weighted_mask(6, seed=14)
        mask[1:, 1:] += 0.5  # many positives to cap
        mask[:, 0] = 0.0
        return Case(_randn(6, 2, 4, seed=14), mask=mask, options=dict(positives_cap=2))
    if name == "extra_labels":
        return Case(_randn(4, 2, 4, seed=15), labels=torch.tensor([0, 1, 0, 2]),
                    contrast_features=_randn(5, 4, seed=16),
                    contrast_labels=torch.tensor([1, 3, 0, 0, 2]))
    if name == "extra_labels_2d":
        return Case(_randn(6, 3, seed=17), labels=torch.tensor([0, 1, 0, 2, 4, 1]),
                    contrast_features=_randn(4, 3, seed=18),
                    contrast_labels=torch.tensor([2, 3, 0, 1]))
    if name == "extra_multi_hot":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
        contrast_labels = _multi_hot([[0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0], [1, 0, 0]])
        return Case(_randn(4, 2, 4, seed=19), labels=labels,
                    contrast_features=_randn(5, 4, seed=20), contrast_labels=contrast_labels)
    if name == "extra_mask":
        generator = torch.Generator().manual_seed(21)
        contrast_mask = torch.rand(4, 5, generator=generator, dtype=torch.float64)
        contrast_mask[contrast_mask < 0.4] = 0.0
        return Case(_randn(4, 2, 4, seed=21), mask=_weighted_mask(4, seed=22),
                    contrast_features=_randn(5, 4, seed=23), contrast_mask=contrast_mask)
    if name == "extra_mask_default":  # no contrast_mask: the extra rows are negatives
        return Case(_randn(4, 2, 4, seed=24), mask=_weighted_mask(4, seed=25),
                    contrast_features=_randn(3, 4, seed=26))
    if name == "extra_simclr":
        return Case(_randn(4, 2, 4, seed=27), contrast_features=_randn(5, 4, seed=28))
    if name == "extra_cap":  # cap 4 with V=2: one other batch sample, then two extra rows
        return Case(_randn(5, 2, 3, seed=29), labels=torch.tensor([0, 0, 1, 0, 1]),
                    contrast_features=_randn(6, 3, seed=30),
                    contrast_labels=torch.tensor([0, 1, 0, 0, 1, 0]),
                    options=dict(positives_cap=4))
    if name == "temperature":
        return Case(_randn(5, 2, 4, seed=31), labels=torch.tensor([0, 1, 0, 1, 2]),
                    options=dict(temperature=0.5, base_temperature=0.07))
    if name == "unnormalized":
        return Case(_randn(5, 2, 4, seed=32) * 0.6, labels=torch.tensor([0, 1, 0, 1, 2]),
                    contrast_features=_randn(3, 4, seed=33) * 0.6,
                    contrast_labels=torch.tensor([1, 2, 0]),
                    options=dict(normalize=False, temperature=0.3))
    raise KeyError(name)


CASES = [
    "simclr_v2", "simclr_v3", "labels_v2", "labels_v3", "labels_2d_singletons", "multi_hot",
    "multi_hot_bool_2d", "mask_weighted", "mask_weighted_v3", "mask_zero_diagonal", "mask_bool",
    "cap_0", "cap_2", "cap_4", "cap_v3", "cap_weighted_mask", "extra_labels", "extra_labels_2d",
    "extra_multi_hot", "extra_mask", "extra_mask_default", "extra_simclr", "extra_cap",
    "temperature", "unnormalized",
]


def _losses_and_grads(loss_fn, case: Case, options: dict) -> tuple[torch.Tensor, list]:
    """The loss and its gradient w.r.t. features (and contrast_features when present)."""
    features = case.features.clone().requires_grad_(True)
    leaves = [features]
    inputs = case.inputs()
    if case.contrast_features is not None:
        inputs["contrast_features"] = case.contrast_features.clone().requires_grad_(True)
        leaves.append(inputs["contrast_features"])
    loss = loss_fn(features, **inputs, **case.options, **options)
    if loss.ndim == 0:
        scalar = loss
    else:  # reduction "none": a fixed generic weighting of the per-anchor losses
        probe = torch.linspace(0.5, 1.5, loss.numel(), dtype=loss.dtype)
        scalar = (loss * probe).sum()
    grads = torch.autograd.grad(scalar, leaves)
    return loss.detach(), [g.detach() for g in grads]


def _check_against_reference(case: Case, options: dict, paths=PATHS) -> None:
    expected, expected_grads = _losses_and_grads(reference_supcon_loss, case, options)
    assert torch.isfinite(expected).all()
    for chunk_size in paths:
        actual, grads = _losses_and_grads(supcon_loss, case, {**options, "chunk_size": chunk_size})
        where = f"chunk_size={chunk_size}, {options}"
        assert actual.dtype == torch.float64, where
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL,
                                   msg=lambda m: f"{where}: {m}")
        names = ["features", "contrast_features"]
        for name, grad, expected_grad in zip(names, grads, expected_grads):
            torch.testing.assert_close(grad, expected_grad, rtol=RTOL, atol=ATOL,
                                       msg=lambda m: f"grad {name}, {where}: {m}")


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
    _check_against_reference(
        case, dict(variant=variant, denominator=denominator, contrast_mode=contrast_mode)
    )


@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize(
    "case_name", ["labels_v2", "labels_2d_singletons", "mask_zero_diagonal", "extra_cap"]
)
def test_reductions_match_reference(case_name: str, variant: str, reduction: str) -> None:
    for contrast_mode in CONTRAST_MODES:
        _check_against_reference(
            make_case(case_name),
            dict(variant=variant, reduction=reduction, contrast_mode=contrast_mode),
        )


@pytest.mark.parametrize("chunk_size", [1, 2, 4, 7, 12, 13, 100])
def test_tiled_block_sizes(chunk_size: int) -> None:
    """Block sizes that divide the 12 + 5 rows or not, one row per block, one block in all."""
    _check_against_reference(make_case("extra_labels"), dict(variant="in"), paths=[chunk_size])
    _check_against_reference(make_case("cap_2"), dict(denominator="one_positive"),
                             paths=[chunk_size])


@pytest.mark.parametrize("chunk_size", PATHS)
def test_a_cap_above_every_positive_count_changes_nothing(chunk_size) -> None:
    case = make_case("extra_cap")
    inputs = case.inputs()
    uncapped = supcon_loss(case.features, **inputs, chunk_size=chunk_size)
    capped = supcon_loss(case.features, **inputs, positives_cap=100, chunk_size=chunk_size)
    torch.testing.assert_close(capped, uncapped, rtol=RTOL, atol=ATOL)
    tight = supcon_loss(case.features, **inputs, positives_cap=2, chunk_size=chunk_size)
    assert not torch.allclose(tight, uncapped)


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
    features = _randn(5, 3, 4, seed=40)
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
    features = _randn(6, 2, 5, seed=41).requires_grad_(True)
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
# gradcheck on the dense and the tiled path
# ---------------------------------------------------------------------------------------------


def _option_id(options: dict) -> str:
    return "-".join(f"{k}={v}" for k, v in options.items()) or "default"


GRADCHECK_OPTIONS = [
    dict(),
    dict(variant="in"),
    dict(denominator="one_positive"),
    dict(denominator="one_positive", variant="in", contrast_mode="one"),
    dict(denominator="only_negatives", base_temperature=0.07),
    dict(positives_cap=2, variant="in"),
    dict(mask="weighted"),
    dict(mask="weighted", variant="in", denominator="one_positive"),
    dict(simclr=True),
]


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("options", GRADCHECK_OPTIONS, ids=_option_id)
def test_gradcheck(options: dict, chunk_size) -> None:
    options = dict(options)
    features = _randn(4, 2, 3, seed=42).requires_grad_(True)
    contrast_features = _randn(3, 3, seed=43).requires_grad_(True)
    inputs: dict = {}
    if options.pop("simclr", False):
        pass
    elif options.pop("mask", None) == "weighted":
        inputs["mask"] = _weighted_mask(4, seed=44)
        inputs["contrast_mask"] = torch.tensor(
            [[0.0, 1.5, 0.3], [0.0, 0.0, 0.0], [2.0, 0.0, 0.1], [0.0, 0.4, 0.0]],
            dtype=torch.float64,
        )
    else:
        inputs["labels"] = torch.tensor([0, 1, 0, 0])
        inputs["contrast_labels"] = torch.tensor([1, 0, 2])

    def loss(f: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        return supcon_loss(f, contrast_features=cf, temperature=0.5, chunk_size=chunk_size,
                           **inputs, **options)

    assert torch.autograd.gradcheck(loss, (features, contrast_features), fast_mode=True)


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("options", [dict(), dict(variant="in", denominator="one_positive")],
                         ids=["default", "in-one_positive"])
def test_gradcheck_full(options: dict, chunk_size) -> None:
    """Every input coordinate against finite differences (the fast mode above projects)."""
    features = _randn(3, 2, 3, seed=59).requires_grad_(True)
    contrast_features = _randn(2, 3, seed=60).requires_grad_(True)

    def loss(f: torch.Tensor, cf: torch.Tensor) -> torch.Tensor:
        return supcon_loss(f, torch.tensor([0, 1, 0]), contrast_features=cf,
                           contrast_labels=torch.tensor([1, 0]), temperature=0.5,
                           chunk_size=chunk_size, **options)

    assert torch.autograd.gradcheck(loss, (features, contrast_features))


# ---------------------------------------------------------------------------------------------
# Invariances and agreement between paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [None, 5])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["labels", "mask", "simclr", "extra"])
def test_permuting_the_batch_leaves_the_loss_unchanged(kind: str, variant: str, chunk_size) -> None:
    batch, views = 8, 2
    features = _randn(batch, views, 4, seed=45)
    labels = torch.tensor([0, 1, 2, 0, 1, 0, 3, 2])
    perm = torch.randperm(batch, generator=torch.Generator().manual_seed(46))
    inputs: dict = {}
    permuted: dict = {}
    if kind in ("labels", "extra"):
        inputs["labels"], permuted["labels"] = labels, labels[perm]
    if kind == "mask":
        mask = _weighted_mask(batch, seed=47)
        inputs["mask"], permuted["mask"] = mask, mask[perm][:, perm]
    if kind == "extra":
        extra = dict(contrast_features=_randn(5, 4, seed=48),
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


FLOAT32_OPTIONS = [
    dict(),
    dict(variant="in", denominator="one_positive"),
    dict(denominator="only_negatives", contrast_mode="one"),
    dict(positives_cap=4, variant="in"),
    dict(mask=True),
    dict(simclr=True, views=3),
]


@pytest.mark.parametrize("options", FLOAT32_OPTIONS, ids=_option_id)
def test_float32_dense_and_tiled_agree(options: dict) -> None:
    options = dict(options)
    batch, views, dim = 24, options.pop("views", 2), 16
    features = _randn(batch, views, dim, seed=49).float()
    contrast_features = _randn(10, dim, seed=50).float()
    inputs: dict = {}
    if options.pop("simclr", False):
        pass
    elif options.pop("mask", False):
        inputs["mask"] = _weighted_mask(batch, seed=51).float()
    else:
        inputs["labels"] = torch.arange(batch) % 5
        inputs["contrast_labels"] = torch.arange(10) % 6

    results = []
    for chunk_size in [None, 7, 16]:
        f = features.clone().requires_grad_(True)
        cf = contrast_features.clone().requires_grad_(True)
        loss = supcon_loss(f, contrast_features=cf, chunk_size=chunk_size, **inputs, **options)
        assert loss.dtype == torch.float32
        loss.backward()
        results.append((loss.detach(), f.grad, cf.grad))
    dense = results[0]
    for tiled in results[1:]:
        torch.testing.assert_close(tiled[0], dense[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(tiled[1], dense[1], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(tiled[2], dense[2], rtol=1e-5, atol=1e-7)


def test_auto_chunk_size_equals_dense_on_small_input() -> None:
    case = make_case("extra_labels")
    _check_against_reference(case, dict(variant="in"), paths=["auto"])
    auto = supcon_loss(case.features, **case.inputs(), chunk_size="auto")
    dense = supcon_loss(case.features, **case.inputs(), chunk_size=None)
    torch.testing.assert_close(auto, dense, rtol=RTOL, atol=ATOL)


def test_check_inputs_false_gives_the_same_loss() -> None:
    case = make_case("mask_weighted")
    checked = supcon_loss(case.features, **case.inputs())
    unchecked = supcon_loss(case.features, **case.inputs(), check_inputs=False)
    torch.testing.assert_close(unchecked, checked, rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------
# No NaN, low precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", PATHS)
@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_anchors_without_positives_give_no_nan(variant: str, denominator: str, chunk_size) -> None:
    features = _randn(6, 4, seed=52).float().requires_grad_(True)
    labels = torch.tensor([0, 1, 2, 0, 3, 4])  # only rows 0 and 3 have a positive
    loss = supcon_loss(features, labels, variant=variant, denominator=denominator,
                       chunk_size=chunk_size)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(features.grad).all()
    per_anchor = supcon_loss(features, labels, variant=variant, denominator=denominator,
                             chunk_size=chunk_size, reduction="none")
    assert torch.isfinite(per_anchor).all()
    assert torch.all(per_anchor[torch.tensor([1, 2, 4, 5])] == 0.0)
    torch.testing.assert_close(loss, per_anchor[torch.tensor([0, 3])].mean())


@pytest.mark.parametrize("denominator", DENOMINATORS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_far_apart_logits_stay_finite_on_every_path(variant: str, denominator: str) -> None:
    """temperature=0.01 puts logits 100s apart: float32 must not under/overflow, on any path."""
    case = make_case("labels_v2")
    results = []
    for chunk_size in [None, 3]:
        features = case.features.float().requires_grad_(True)
        loss = supcon_loss(features, case.labels, temperature=0.01, chunk_size=chunk_size,
                           variant=variant, denominator=denominator)
        loss.backward()
        assert torch.isfinite(loss), f"chunk_size={chunk_size}: loss {loss}"
        assert torch.isfinite(features.grad).all(), f"chunk_size={chunk_size}"
        results.append((loss.detach(), features.grad))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [None, 4])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_input(dtype: torch.dtype, chunk_size) -> None:
    features = _randn(6, 2, 8, seed=53).to(dtype).requires_grad_(True)
    contrast_features = _randn(4, 8, seed=54).to(dtype).requires_grad_(True)
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


# ---------------------------------------------------------------------------------------------
# Bad input: ValueError naming the argument
# ---------------------------------------------------------------------------------------------

F = _randn(4, 2, 3, seed=55)
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
    "one_view_no_labels_2d": (dict(features=_randn(4, 3, seed=56)), "labels"),
    "one_view_no_labels_3d": (dict(features=_randn(4, 1, 3, seed=57)), "labels"),
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


@pytest.mark.parametrize("chunk_size", [None, 3])
def test_no_anchor_with_a_positive_raises(chunk_size) -> None:
    with pytest.raises(ValueError):
        supcon_loss(_randn(5, 3, seed=58), torch.arange(5), chunk_size=chunk_size)
