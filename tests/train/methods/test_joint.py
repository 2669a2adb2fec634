"""supcon+ce: the joint loss is the sum of its parts, --ce-detach stops the CE gradient at the
classifier, runs resume exactly, and `supcon linear` works on the checkpoint."""

from __future__ import annotations

import csv

import pytest
import torch
import torch.nn.functional as F
from reference_losses import reference_supcon_loss

from supcon.augment import make_views
from supcon.checkpoint import encoder_from_checkpoint, load_supcon_model
from supcon.cli import main
from supcon.data import load_splits
from supcon.eval.pipeline import train_and_probe
from supcon.models import LinearClassifier
from supcon.train import loop
from supcon.train.methods import METHODS, build_supcon_model, train_joint, train_linear
from supcon.train.methods.common import build_augment, input_transform
from supcon.train.methods.joint import joint_step
from supcon.train.methods.pretrain import EncoderAndHead
from supcon.train.runtime import setup_runtime


def _parts(cfg):
    """A freshly seeded model, classifier and joint step for ``cfg``, and one batch of 8 images."""
    torch.manual_seed(0)
    data, rt = load_splits(cfg), setup_runtime(cfg)
    model = build_supcon_model(cfg, data.channels)
    classifier = LinearClassifier(model.out_dim, data.num_classes)
    augment, normalize = build_augment(cfg, data), input_transform(data, rt)
    step = joint_step(cfg, rt, EncoderAndHead(model), classifier, augment, normalize)
    images, labels = data.train.images[:8], data.train.labels[:8]
    flat = normalize(make_views(augment, images, cfg.views).flatten(0, 1))  # "none": deterministic views
    return model, classifier, step, images, labels, flat


def test_the_joint_loss_is_supcon_plus_w_times_the_classifiers_cross_entropy(tiny_config):
    cfg = tiny_config(method="supcon+ce", ce_weight=0.5, augment="none", temperature=0.2)
    model, classifier, step, images, labels, flat = _parts(cfg)
    loss, extras = step(images, labels)
    h = model.encoder(flat)  # (8 * views, out_dim), image-major: row i * views + v
    z = model.head(h).view(8, cfg.views, -1)
    supcon = reference_supcon_loss(z.double(), labels, temperature=0.2)
    ce = F.cross_entropy(classifier(h).double(), labels.repeat_interleave(cfg.views))
    assert extras["contrastive_loss"].item() == pytest.approx(supcon.item(), rel=1e-4)
    assert extras["ce_loss"].item() == pytest.approx(ce.item(), rel=1e-4)
    assert loss.item() == pytest.approx(supcon.item() + 0.5 * ce.item(), rel=1e-4)


def _encoder_grads(cfg):
    model, classifier, step, images, labels, _ = _parts(cfg)
    loss, _ = step(images, labels)
    loss.backward()
    if cfg.ce_weight > 0:  # the classifier trains, detached or not
        assert classifier.weight.grad is not None and classifier.weight.grad.abs().sum() > 0
    return torch.cat([p.grad.flatten() for p in model.encoder.parameters()])


def test_ce_detach_keeps_the_cross_entropy_gradient_out_of_the_encoder(tiny_config):
    base = dict(method="supcon+ce", augment="none")
    supcon_only = _encoder_grads(tiny_config(**base, ce_weight=0.0))
    detached = _encoder_grads(tiny_config(**base, ce_weight=2.0, ce_detach=True))
    joint = _encoder_grads(tiny_config(**base, ce_weight=2.0))
    assert torch.allclose(detached, supcon_only, atol=1e-6)
    assert not torch.allclose(joint, supcon_only, atol=1e-4)


def _rows(path):
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_supcon_plus_ce_trains_and_resumes_exactly(tmp_path, monkeypatch, tiny_config):
    cfg = tiny_config(method="supcon+ce", epochs=2, warmup_epochs=1.5)
    full = train_joint(cfg, tmp_path / "full")
    assert {"contrastive_loss", "ce_loss", "classifier_acc", "knn_acc"} <= set(full)
    real_save = loop.save_checkpoint

    def save_then_crash(state, path):
        real_save(state, path)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(loop, "save_checkpoint", save_then_crash)
        with pytest.raises(KeyboardInterrupt):
            train_joint(cfg, tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["epoch"] == 1
    train_joint(cfg, tmp_path / "resumed", resume=True)
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True) for d in ("full", "resumed"))
    assert a["kind"] == "pretrain" and a["method"] == "supcon+ce" and a["signature"]["model"] == "supcon"
    assert set(a["model"]) == {"model", "classifier"} and a["epoch"] == b["epoch"] == 2
    for name in a["model"]:
        for key, value in a["model"][name].items():
            assert torch.equal(value, b["model"][name][key]), f"{name}.{key} differs after resume"
    for pid, state in a["optimizer"]["state"].items():
        for key, value in state.items():
            assert torch.equal(value, b["optimizer"]["state"][pid][key]), f"optimizer {pid}.{key}"
    columns = ["loss", "lr", "contrastive_loss", "ce_loss", "classifier_acc"]
    assert [[r[c] for c in columns] for r in _rows(tmp_path / "full" / "metrics.csv")] == \
        [[r[c] for c in columns] for r in _rows(tmp_path / "resumed" / "metrics.csv")]


def test_the_cli_trains_supcon_plus_ce_and_linear_probes_its_checkpoint(tmp_path, tiny_flags, tiny_config):
    assert METHODS["supcon+ce"].train is train_joint and METHODS["supcon+ce"].stage == "encoder"
    out = tmp_path / "joint"
    assert main(["pretrain", "--out", str(out), *tiny_flags(method="supcon+ce", ce_weight=0.5, ce_detach=True)]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["method"] == "supcon+ce" and state["config"]["ce_detach"] is True
    assert main(["linear", "--checkpoint", str(out / "checkpoint.pt"), "--out", str(tmp_path / "probe"),
                 *tiny_flags()]) == 0
    probe = train_linear(tiny_config(), out / "checkpoint.pt", tmp_path / "probe2")
    assert 0 <= probe["test_acc"] <= 100


def test_a_vit_trains_with_supcon_plus_ce(tmp_path, tiny_config):
    cfg = tiny_config(method="supcon+ce", arch="vit-tiny", lr=1e-3, weight_decay=0.05)
    assert cfg.optimizer == "adamw"
    metrics = train_joint(cfg, tmp_path)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["signature"]["arch"] == "vit-tiny" and state["signature"]["image_size"] == 8  # the tiny data's side
    encoder, _ = encoder_from_checkpoint(tmp_path / "checkpoint.pt")  # rebuilt from the signature
    model, _ = load_supcon_model(tmp_path / "checkpoint.pt")
    for key, value in state["model"]["model"].items():
        if key.startswith("encoder."):
            assert torch.equal(encoder.state_dict()[key[len("encoder."):]], value)
    assert model.encoder.patch_size == 4 and model.encoder.out_dim == 192


def test_supcon_run_trains_and_probes_supcon_plus_ce(tmp_path, tiny_config):
    result = train_and_probe("supcon+ce", tiny_config(), tmp_path / "supcon+ce")
    assert 0 <= result["accuracy"] <= 100 and result["knn_acc"] is not None
    assert (tmp_path / "supcon+ce" / "linear" / "checkpoint.pt").is_file()
