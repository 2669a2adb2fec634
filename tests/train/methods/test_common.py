"""Shared method pieces: class weights (inverse, effective number) and the class-accuracy metrics."""

from __future__ import annotations

import math

import pytest
import torch

from supcon.config import ConfigError
from supcon.train.methods.common import class_accuracy_metrics, class_weights


def test_inverse_weights_are_n_over_c_n_c_with_mean_one():
    counts = torch.tensor([100, 10, 1, 89])
    w = class_weights(counts, "inverse")
    expected = torch.tensor([200 / (4 * n) for n in (100, 10, 1, 89)], dtype=torch.float64)
    expected = expected / expected.mean()
    assert torch.allclose(w.double(), expected, rtol=1e-6)
    assert w.mean().item() == pytest.approx(1.0)


@pytest.mark.parametrize("beta", [0.9, 0.999, 0.9999])
def test_effective_number_weights_follow_cui_et_al(beta):
    counts = [500, 50, 5]
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    expected = [r * 3 / sum(raw) for r in raw]
    w = class_weights(torch.tensor(counts), "effective-number", beta)
    assert w.tolist() == pytest.approx(expected, rel=1e-6)


def test_effective_number_limits_and_absent_classes():
    # beta = 0: every class weighs the same; balanced counts: all ones
    assert class_weights(torch.tensor([500, 5]), "effective-number", 0.0).tolist() == pytest.approx([1, 1])
    assert class_weights(torch.tensor([7, 7, 7]), "inverse").tolist() == pytest.approx([1, 1, 1])
    w = class_weights(torch.tensor([10, 0, 30]), "inverse")
    assert w[1].item() == 0 and w[[0, 2]].mean().item() == pytest.approx(1.0)
    assert class_weights(torch.tensor([1, 2]), "none") is None
    with pytest.raises(ConfigError, match="--class-weights"):
        class_weights(torch.tensor([1, 2]), "sqrt")


def test_class_accuracy_metrics_are_balanced_and_per_class():
    out = class_accuracy_metrics(torch.tensor([0, 1, 1, 1]), torch.tensor([0, 0, 1, 1]), 3)
    assert out["balanced_acc"] == pytest.approx(75.0)
    assert out["per_class_acc"] == [50.0, 100.0, None]
    assert not math.isnan(out["balanced_acc"])
