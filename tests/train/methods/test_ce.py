"""The cross-entropy baseline: class weights, the sampler it trains with, balanced accuracy in metrics.json."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from supcon.data import load_test_split
from supcon.metrics import balanced_accuracy, per_class_accuracy
from supcon.train import methods as engine
from supcon.train.methods import ce as ce_module


def test_metrics_json_holds_balanced_and_per_class_accuracy_of_the_test_predictions(tmp_path, tiny_config):
    metrics = engine.train_ce(tiny_config(imbalance_ratio=4.0), tmp_path)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    predictions = torch.load(tmp_path / "test_predictions.pt", weights_only=True)
    labels = load_test_split(tiny_config()).labels
    assert stored["balanced_acc"] == pytest.approx(balanced_accuracy(predictions, labels))
    assert stored["per_class_acc"] == pytest.approx(per_class_accuracy(predictions, labels, 4).tolist())
    assert metrics["balanced_acc"] == stored["balanced_acc"]


def test_class_weights_reach_cross_entropy(tmp_path, tiny_config, monkeypatch):
    seen = []
    real = F.cross_entropy

    def spy(logits, labels, weight=None, **kw):
        seen.append(None if weight is None else weight.clone())
        return real(logits, labels, weight=weight, **kw)

    monkeypatch.setattr(ce_module.F, "cross_entropy", spy)
    engine.train_ce(tiny_config(imbalance_ratio=4.0, class_weights="inverse"), tmp_path)
    counts = torch.tensor([16.0, 10.0, 6.0, 4.0])  # the long tail of 4 x 16 images at ratio 4
    expected = (1 / counts) / (1 / counts).mean()
    assert seen and all(w is not None and torch.allclose(w, expected) for w in seen)


def test_cross_entropy_trains_on_the_configured_sampler(tmp_path, tiny_config):
    rows = {}
    for sampler in ("random", "m-per-class", "class-balanced"):
        rows[sampler] = engine.train_ce(tiny_config(sampler=sampler, m_per_class=4), tmp_path / sampler)
    assert rows["m-per-class"]["positives_per_anchor"] == 3.0  # 3 other images of the class, one view
    assert rows["m-per-class"]["loss"] != rows["random"]["loss"] != rows["class-balanced"]["loss"]
