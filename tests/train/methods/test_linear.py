"""The linear probe: random batches whatever --sampler says, class weights, balanced accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from supcon.data import load_test_split
from supcon.metrics import balanced_accuracy
from supcon.train import loop
from supcon.train import methods as engine


def test_the_probe_keeps_random_batches_and_reports_balanced_accuracy(tmp_path, tiny_config, monkeypatch):
    cfg = tiny_config(sampler="m-per-class", m_per_class=4, class_weights="effective-number", cb_beta=0.9)
    engine.pretrain(cfg, tmp_path / "pre")
    kinds = []
    real = loop.make_sampler

    def spy(task, cfg):
        sampler = real(task, cfg)
        kinds.append((task.kind, sampler.kind))
        return sampler

    monkeypatch.setattr(loop, "make_sampler", spy)
    engine.train_linear(cfg, tmp_path / "pre" / "checkpoint.pt", tmp_path / "lin")
    assert kinds == [("linear", "random")]
    stored = json.loads((tmp_path / "lin" / "metrics.json").read_text())
    predictions = torch.load(tmp_path / "lin" / "test_predictions.pt", weights_only=True)
    assert stored["balanced_acc"] == pytest.approx(balanced_accuracy(predictions, load_test_split(cfg).labels))
    assert len(stored["per_class_acc"]) == 4
