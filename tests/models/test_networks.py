"""Tests for supcon.models.networks: SupCon and cross-entropy models and their signatures."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.factory import build_encoder
from supcon.models.heads import ProjectionHead
from supcon.models.networks import CEModel, SupConModel, model_signature


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: SupConModel(build_encoder("small"), head="conv"), "head"),
        (lambda: SupConModel(build_encoder("small"), feat_dim=0), "feat_dim"),
        (lambda: SupConModel(nn.Linear(3, 3)), "encoder"),
        (lambda: CEModel(nn.Identity(), 10), "encoder"),
        (lambda: CEModel(build_encoder("small"), 0), "num_classes"),
        (lambda: model_signature("resnet18"), "model"),
    ],
)
def test_models_reject_bad_arguments(build, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build()


def test_supcon_model_forward_and_embed() -> None:
    torch.manual_seed(0)
    model = SupConModel(build_encoder("small", in_channels=1), head="mlp", feat_dim=16)
    assert model.out_dim == model.encoder.out_dim == 128
    assert isinstance(model.head, ProjectionHead) and model.head.kind == "mlp"
    x = torch.randn(4, 1, 8, 8)
    z = model(x)
    assert z.shape == (4, 16)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))
    model.eval()
    h = model.embed(x)
    assert h.shape == (4, 128)
    torch.testing.assert_close(model(x), model.head(h))
    z.sum().backward()
    assert model.head.net[0].weight.grad is not None
    assert model.encoder.features[0].weight.grad is not None


def test_ce_model_forward_and_embed() -> None:
    model = CEModel(build_encoder("small", in_channels=1), num_classes=10)
    x = torch.randn(4, 1, 8, 8)
    logits = model(x)
    assert logits.shape == (4, 10)
    F.cross_entropy(logits, torch.arange(4)).backward()
    assert model.encoder.features[0].weight.grad is not None
    model.eval()
    assert model.embed(x).shape == (4, 128)
    torch.testing.assert_close(model(x), model.classifier(model.embed(x)))


def test_channels_last_matches_contiguous() -> None:
    torch.manual_seed(0)
    model = SupConModel(build_encoder("resnet18", stem="imagenet"), feat_dim=8).eval()
    x = torch.randn(2, 3, 16, 16)
    expected = model(x)
    x_cl = x.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x_cl), expected, rtol=1e-4, atol=1e-5)
    model = model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x_cl), expected, rtol=1e-4, atol=1e-5)
    small = build_encoder("small", in_channels=1).eval()
    g = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(small(g.to(memory_format=torch.channels_last)), small(g), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet18", "small"])
def test_eval_mode_is_deterministic_and_seeded_builds_match(arch: str) -> None:
    torch.manual_seed(123)
    a = SupConModel(build_encoder(arch, in_channels=1), feat_dim=8)
    torch.manual_seed(123)
    b = SupConModel(build_encoder(arch, in_channels=1), feat_dim=8)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    a.eval()
    x = torch.randn(3, 1, 8, 8)
    first = a(x)
    assert torch.equal(first, a(x))
    # in eval mode a sample's output does not depend on the rest of the batch
    torch.testing.assert_close(a(x[:1]), first[:1], rtol=1e-4, atol=1e-6)
    torch.manual_seed(124)
    c = build_encoder(arch, in_channels=1)
    assert not torch.equal(next(c.parameters()), next(a.encoder.parameters()))


def test_model_signature() -> None:
    encoder = build_encoder("resnet18", in_channels=1, stem="imagenet", width=2)
    assert model_signature(encoder) == {
        "model": "encoder",
        "arch": "resnet18",
        "in_channels": 1,
        "stem": "imagenet",
        "width": 2,
        "out_dim": 1024,
    }
    sig = model_signature(SupConModel(encoder, head="linear", feat_dim=64))
    assert sig["model"] == "supcon" and sig["head"] == "linear" and sig["feat_dim"] == 64
    assert sig["arch"] == "resnet18" and sig["width"] == 2
    ce = model_signature(CEModel(build_encoder("small", in_channels=1), num_classes=10))
    assert ce == {
        "model": "ce",
        "arch": "small",
        "in_channels": 1,
        "stem": None,
        "width": 1,
        "out_dim": 128,
        "num_classes": 10,
    }
    # differences in architecture show up in the signature
    base = model_signature(SupConModel(build_encoder("small", in_channels=1)))
    assert base != model_signature(SupConModel(build_encoder("small", in_channels=3)))
    assert base != model_signature(SupConModel(build_encoder("small", in_channels=1, width=2)))
    assert base != model_signature(SupConModel(build_encoder("small", in_channels=1), head="linear"))
    assert base != model_signature(SupConModel(build_encoder("small", in_channels=1), feat_dim=64))
    assert base == model_signature(SupConModel(build_encoder("small", in_channels=1)))
    assert model_signature(build_encoder("resnet18", stem="cifar")) != model_signature(
        build_encoder("resnet18", stem="imagenet")
    )


def test_signature_rebuilds_a_loadable_model() -> None:
    """A signature holds what build_encoder needs: rebuild and load a state dict strictly."""
    original = SupConModel(build_encoder("small", in_channels=1, width=2), head="linear", feat_dim=32)
    sig = model_signature(original)
    encoder = build_encoder(sig["arch"], in_channels=sig["in_channels"], stem=sig["stem"], width=sig["width"])
    rebuilt = SupConModel(encoder, head=sig["head"], feat_dim=sig["feat_dim"])
    rebuilt.load_state_dict(original.state_dict(), strict=True)
    assert model_signature(rebuilt) == sig


def test_signature_of_custom_encoder() -> None:
    class Tiny(nn.Module):
        out_dim = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :4]

    sig = model_signature(SupConModel(Tiny(), feat_dim=2))
    assert sig["arch"].endswith("Tiny") and sig["out_dim"] == 4 and sig["feat_dim"] == 2
