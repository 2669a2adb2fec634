"""Contrastive pretraining pieces: per-anchor class weights on SupCon's per-anchor losses."""

from __future__ import annotations

import pytest
import torch

from reference_losses import reference_supcon_loss
from supcon.losses import supcon_loss
from supcon.train.methods.pretrain import weighted_anchor_mean


@pytest.mark.parametrize("views", [2, 3])
def test_weighted_supcon_is_the_hand_weighted_mean_of_per_anchor_losses(views):
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(6, views, 5, generator=gen, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 1])
    weights = torch.tensor([0.5, 2.0, 0.5], dtype=torch.float64)
    rows = supcon_loss(features, labels, temperature=0.2, reduction="none")
    loss = weighted_anchor_mean(rows, labels, weights)
    per_anchor = reference_supcon_loss(features, labels, temperature=0.2, reduction="none")
    assert torch.allclose(rows, per_anchor, rtol=1e-9)
    expected = 0.0
    for v in range(views):  # anchor rows are view-major: row v * batch + i is view v of image i
        for i in range(6):
            expected += weights[labels[i]] * per_anchor[v * 6 + i]
    assert loss.item() == pytest.approx((expected / (6 * views)).item(), rel=1e-9)
    # all weights 1: the usual mean
    ones = weighted_anchor_mean(rows, labels, torch.ones(3, dtype=torch.float64))
    assert ones.item() == pytest.approx(supcon_loss(features, labels, temperature=0.2).item(), rel=1e-12)


def test_supcon_pretraining_with_class_weights_trains(tmp_path, tiny_config):
    from supcon.train import methods as engine

    plain = engine.pretrain(tiny_config(), tmp_path / "plain")
    weighted = engine.pretrain(tiny_config(class_weights="inverse", imbalance_ratio=4.0), tmp_path / "weighted")
    assert plain["loss"] != weighted["loss"] and weighted["positives_per_anchor"] > 1


def test_a_vit_is_built_for_the_data_image_size(tiny_config):
    """Patches and position embeddings follow the data's side (64 -> patch 8), not a fixed 32."""
    from supcon.train.methods.pretrain import build_supcon_model

    model = build_supcon_model(tiny_config(arch="vit-tiny"), channels=1, image_size=64)
    assert model.encoder.image_size == 64 and model.encoder.patch_size == 8
