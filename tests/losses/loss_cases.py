"""Inputs and checks shared by the loss tests (tests/losses/): the named cases every option runs
on, and the comparison of the dense and the tiled path with the float64 loop reference.

The reference (tests/reference_losses.py) is written from the paper's equations with one Python
loop per anchor and per term; the dense path (chunk_size=None) and the tiled path (small chunk
sizes, many blocks, blocks that do not divide the row count) must match it in value and in
gradient with respect to both features and contrast_features.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from supcon import supcon_loss
from reference_losses import reference_supcon_loss

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


def randn(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


def weighted_mask(batch: int, seed: int, zero_diagonal: bool = False) -> torch.Tensor:
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
        return Case(randn(5, 2, 4, seed=1))
    if name == "simclr_v3":
        return Case(randn(4, 3, 5, seed=2))
    if name == "labels_v2":
        return Case(randn(6, 2, 4, seed=3), labels=torch.tensor([0, 1, 0, 2, 1, 0]))
    if name == "labels_v3":
        return Case(randn(5, 3, 3, seed=4), labels=torch.tensor([1, 1, 0, 2, 2]))
    if name == "labels_2d_singletons":  # rows 3, 4 and 6 have no positive
        return Case(randn(8, 4, seed=5), labels=torch.tensor([0, 1, 0, 2, 3, 1, 4, 0]))
    if name == "multi_hot":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0]])
        return Case(randn(6, 2, 4, seed=6), labels=labels)
    if name == "multi_hot_bool_2d":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [1, 0, 0],
                             [0, 0, 0]]).bool()  # the last row shares nothing: no positive
        return Case(randn(7, 5, seed=7), labels=labels)
    if name == "mask_weighted":
        return Case(randn(5, 2, 4, seed=8), mask=weighted_mask(5, seed=8))
    if name == "mask_weighted_v3":
        return Case(randn(4, 3, 3, seed=9), mask=weighted_mask(4, seed=9))
    if name == "mask_zero_diagonal":  # own views are negatives; some samples have no positive
        mask = weighted_mask(5, seed=10, zero_diagonal=True)
        mask[3] = 0.0
        return Case(randn(5, 2, 4, seed=10), mask=mask)
    if name == "mask_bool":
        labels = torch.tensor([0, 1, 0, 1, 2, 0])
        mask = labels[:, None] == labels[None, :]
        mask[0, 2] = False  # not symmetric
        return Case(randn(6, 2, 3, seed=11), mask=mask)
    if name in ("cap_0", "cap_2", "cap_4"):
        labels = torch.tensor([0, 0, 1, 0, 0, 1, 0])
        return Case(randn(7, 2, 4, seed=12), labels=labels,
                    options=dict(positives_cap=int(name[-1])))
    if name == "cap_v3":
        labels = torch.tensor([2, 2, 1, 2, 1, 2])
        return Case(randn(6, 3, 3, seed=13), labels=labels, options=dict(positives_cap=3))
    if name == "cap_weighted_mask":
        mask = weighted_mask(6, seed=14)
        mask[1:, 1:] += 0.5  # many positives to cap
        mask[:, 0] = 0.0
        return Case(randn(6, 2, 4, seed=14), mask=mask, options=dict(positives_cap=2))
    if name == "extra_labels":
        return Case(randn(4, 2, 4, seed=15), labels=torch.tensor([0, 1, 0, 2]),
                    contrast_features=randn(5, 4, seed=16),
                    contrast_labels=torch.tensor([1, 3, 0, 0, 2]))
    if name == "extra_labels_2d":
        return Case(randn(6, 3, seed=17), labels=torch.tensor([0, 1, 0, 2, 4, 1]),
                    contrast_features=randn(4, 3, seed=18),
                    contrast_labels=torch.tensor([2, 3, 0, 1]))
    if name == "extra_multi_hot":
        labels = _multi_hot([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
        contrast_labels = _multi_hot([[0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 0, 0], [1, 0, 0]])
        return Case(randn(4, 2, 4, seed=19), labels=labels,
                    contrast_features=randn(5, 4, seed=20), contrast_labels=contrast_labels)
    if name == "extra_mask":
        generator = torch.Generator().manual_seed(21)
        contrast_mask = torch.rand(4, 5, generator=generator, dtype=torch.float64)
        contrast_mask[contrast_mask < 0.4] = 0.0
        return Case(randn(4, 2, 4, seed=21), mask=weighted_mask(4, seed=22),
                    contrast_features=randn(5, 4, seed=23), contrast_mask=contrast_mask)
    if name == "extra_mask_default":  # no contrast_mask: the extra rows are negatives
        return Case(randn(4, 2, 4, seed=24), mask=weighted_mask(4, seed=25),
                    contrast_features=randn(3, 4, seed=26))
    if name == "extra_simclr":
        return Case(randn(4, 2, 4, seed=27), contrast_features=randn(5, 4, seed=28))
    if name == "extra_cap":  # cap 4 with V=2: one other batch sample, then two extra rows
        return Case(randn(5, 2, 3, seed=29), labels=torch.tensor([0, 0, 1, 0, 1]),
                    contrast_features=randn(6, 3, seed=30),
                    contrast_labels=torch.tensor([0, 1, 0, 0, 1, 0]),
                    options=dict(positives_cap=4))
    if name == "temperature":
        return Case(randn(5, 2, 4, seed=31), labels=torch.tensor([0, 1, 0, 1, 2]),
                    options=dict(temperature=0.5, base_temperature=0.07))
    if name == "unnormalized":
        return Case(randn(5, 2, 4, seed=32) * 0.6, labels=torch.tensor([0, 1, 0, 1, 2]),
                    contrast_features=randn(3, 4, seed=33) * 0.6,
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


def losses_and_grads(loss_fn, case: Case, options: dict) -> tuple[torch.Tensor, list]:
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


def check_against_reference(case: Case, options: dict, paths=PATHS) -> None:
    expected, expected_grads = losses_and_grads(reference_supcon_loss, case, options)
    assert torch.isfinite(expected).all()
    for chunk_size in paths:
        actual, grads = losses_and_grads(supcon_loss, case, {**options, "chunk_size": chunk_size})
        where = f"chunk_size={chunk_size}, {options}"
        assert actual.dtype == torch.float64, where
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=ATOL,
                                   msg=lambda m: f"{where}: {m}")
        names = ["features", "contrast_features"]
        for name, grad, expected_grad in zip(names, grads, expected_grads):
            torch.testing.assert_close(grad, expected_grad, rtol=RTOL, atol=ATOL,
                                       msg=lambda m: f"grad {name}, {where}: {m}")
