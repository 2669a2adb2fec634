"""Tests for supcon.models: encoders, heads, models and signatures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from supcon.models import (
    ARCHITECTURES,
    BasicBlock,
    Bottleneck,
    CEModel,
    LinearClassifier,
    ProjectionHead,
    SupConModel,
    build_encoder,
    model_signature,
)

EXPECTED_OUT_DIM = {
    "resnet18": 512,
    "resnet34": 512,
    "resnet50": 2048,
    "resnet101": 2048,
    "resnet200": 2048,
    "small": 128,
}
EXPECTED_BLOCKS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet200": (Bottleneck, [3, 24, 36, 3]),
}


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """Tiny convolutions gain nothing from threads, and lose a lot when the CPU is shared."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


BIG = {"resnet101", "resnet200"}  # 42M / 62M parameters: 1-2 s idle, over 10 s on a busy CPU


def _forward_backward(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    out = encoder(x)
    out.square().mean().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all()
    for name, param in encoder.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
    return out


@pytest.mark.parametrize(
    "arch",
    [pytest.param(a, marks=pytest.mark.slow) if a in BIG else a for a in ARCHITECTURES],
)
def test_every_arch_forward_backward(arch: str) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(arch, in_channels=3)
    assert encoder.out_dim == EXPECTED_OUT_DIM[arch]
    out = _forward_backward(encoder, torch.randn(2, 3, 8, 8))
    assert out.shape == (2, EXPECTED_OUT_DIM[arch])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", list(EXPECTED_BLOCKS))
def test_resnet_block_layout(arch: str) -> None:
    block, layers = EXPECTED_BLOCKS[arch]
    with torch.device("meta"):  # no memory, no init cost: cheap even for resnet200
        encoder = build_encoder(arch)
    assert encoder.out_dim == EXPECTED_OUT_DIM[arch]
    stages = [encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4]
    assert [len(stage) for stage in stages] == layers
    assert all(type(b) is block for stage in stages for b in stage)


def test_resnet18_param_count() -> None:
    encoder = build_encoder("resnet18", width=1)
    n_params = sum(p.numel() for p in encoder.parameters())
    assert 11_000_000 < n_params < 11_300_000  # torchvision's resnet18 minus fc and with a 3x3 stem


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_stems_and_channels(stem: str, in_channels: int) -> None:
    encoder = build_encoder("resnet18", in_channels=in_channels, stem=stem)
    size = 8 if stem == "cifar" else 16
    out = _forward_backward(encoder, torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 512)
    with pytest.raises(RuntimeError):
        encoder(torch.randn(2, 4 - in_channels, size, size))  # 1 <-> 3 channels


def test_stems_differ_in_resolution() -> None:
    """The CIFAR stem keeps full resolution; the ImageNet stem divides it by 4 before layer1."""
    x = torch.randn(2, 3, 32, 32)
    cifar = build_encoder("resnet18", stem="cifar")
    imagenet = build_encoder("resnet18", stem="imagenet")
    assert cifar.stem_block(x).shape[-2:] == (32, 32)
    assert imagenet.stem_block(x).shape[-2:] == (8, 8)
    first_conv = [m for m in imagenet.stem_block.modules() if isinstance(m, nn.Conv2d)][0]
    assert first_conv.kernel_size == (7, 7) and first_conv.stride == (2, 2)
    assert any(isinstance(m, nn.MaxPool2d) for m in imagenet.stem_block.modules())
    assert not any(isinstance(m, nn.MaxPool2d) for m in cifar.stem_block.modules())


@pytest.mark.parametrize("arch, base", [("resnet18", 512), ("resnet50", 2048), ("small", 128)])
def test_width_multiplies_out_dim(arch: str, base: int) -> None:
    with torch.device("meta"):  # shapes only: a width-2 ResNet-50 has ~94M parameters
        narrow = build_encoder(arch, in_channels=1, width=1)
        wide = build_encoder(arch, in_channels=1, width=2)
        out = wide(torch.randn(2, 1, 8, 8))
    assert wide.out_dim == 2 * base
    assert out.shape == (2, 2 * base)
    n_narrow = sum(p.numel() for p in narrow.parameters())
    n_wide = sum(p.numel() for p in wide.parameters())
    assert 3.5 * n_narrow < n_wide < 4.0 * n_narrow  # conv weights grow with width**2


def test_small_width_forward() -> None:
    wide = build_encoder("small", in_channels=1, width=2)
    assert _forward_backward(wide, torch.randn(2, 1, 8, 8)).shape == (2, 256)


@pytest.mark.parametrize("size", [8, 28])
def test_small_cnn_on_tiny_grey_images(size: int) -> None:
    encoder = build_encoder("small", in_channels=1)
    out = _forward_backward(encoder, torch.randn(4, 1, size, size))
    assert out.shape == (4, 128)


def test_small_ignores_stem() -> None:
    torch.manual_seed(0)
    a = build_encoder("small", in_channels=1, stem="cifar")
    torch.manual_seed(0)
    b = build_encoder("small", in_channels=1, stem="imagenet")
    x = torch.randn(3, 1, 8, 8)
    a.eval()
    b.eval()
    torch.testing.assert_close(a(x), b(x))
    assert model_signature(a) == model_signature(b)


def test_zero_init_residual_makes_blocks_identity() -> None:
    encoder = build_encoder("resnet18", zero_init_residual=True)
    for module in encoder.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            assert torch.all(module.last_bn.weight == 0)
    block = encoder.layer1[0]  # identity shortcut
    x = torch.randn(2, 64, 8, 8).relu()
    torch.testing.assert_close(block(x), x)
    plain = build_encoder("resnet18")
    assert torch.all(plain.layer1[0].last_bn.weight == 1)
    bottleneck = build_encoder("resnet50", zero_init_residual=True)
    assert torch.all(bottleneck.layer2[1].bn3.weight == 0)


def test_kaiming_init_scale() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18")
    conv = encoder.layer3[0].conv1  # 3x3, fan_out = out_channels * 9
    expected_std = (2.0 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.05


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"arch": "resnet19"}, "arch"),
        ({"arch": "ResNet18x"}, "arch"),
        ({"arch": "resnet18", "stem": "tiny"}, "stem"),
        ({"arch": "small", "stem": "tiny"}, "stem"),
        ({"arch": "resnet18", "width": 0}, "width"),
        ({"arch": "small", "width": -1}, "width"),
        ({"arch": "resnet18", "width": 1.5}, "width"),
        ({"arch": "resnet18", "in_channels": 0}, "in_channels"),
        ({"arch": "small", "in_channels": True}, "in_channels"),
    ],
)
def test_build_encoder_rejects_bad_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        build_encoder(**kwargs)
    bad = next(v for k, v in kwargs.items() if k == name)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_projection_head_unit_norm(kind: str) -> None:
    head = ProjectionHead(32, kind=kind, out_dim=16)
    x = torch.randn(5, 32) * 10
    out = head(x)
    assert out.shape == (5, 16)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


def test_head_param_counts() -> None:
    mlp = ProjectionHead(64, kind="mlp", out_dim=128)
    linear = ProjectionHead(64, kind="linear", out_dim=128)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(mlp) == (64 * 64 + 64) + (64 * 128 + 128)
    assert count(linear) == 64 * 128 + 128
    assert count(ProjectionHead(64, hidden_dim=32, out_dim=8)) == (64 * 32 + 32) + (32 * 8 + 8)
    assert isinstance(mlp.net[1], nn.ReLU)


def test_projection_head_matches_formula() -> None:
    head = ProjectionHead(6, kind="mlp", out_dim=3)
    x = torch.randn(4, 6)
    lin1, lin2 = head.net[0], head.net[2]
    expected = F.normalize(lin2(lin1(x).clamp_min(0)), dim=1)
    torch.testing.assert_close(head(x), expected)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: ProjectionHead(8, kind="deep"), "kind"),
        (lambda: ProjectionHead(0), "in_dim"),
        (lambda: ProjectionHead(8, out_dim=0), "out_dim"),
        (lambda: ProjectionHead(8, hidden_dim=0), "hidden_dim"),
        (lambda: LinearClassifier(8, 0), "num_classes"),
        (lambda: LinearClassifier(0, 3), "in_dim"),
        (lambda: SupConModel(build_encoder("small"), head="conv"), "head"),
        (lambda: SupConModel(build_encoder("small"), feat_dim=0), "feat_dim"),
        (lambda: SupConModel(nn.Linear(3, 3)), "encoder"),
        (lambda: CEModel(nn.Identity(), 10), "encoder"),
        (lambda: CEModel(build_encoder("small"), 0), "num_classes"),
        (lambda: model_signature("resnet18"), "model"),
    ],
)
def test_heads_reject_bad_arguments(build, name: str) -> None:
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


def test_ce_model_and_linear_classifier() -> None:
    clf = LinearClassifier(12, 5)
    assert isinstance(clf, nn.Linear)
    assert sum(p.numel() for p in clf.parameters()) == 12 * 5 + 5
    assert clf(torch.randn(3, 12)).shape == (3, 5)
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
