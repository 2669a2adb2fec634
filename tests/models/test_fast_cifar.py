"""Tests for supcon.models.fast_cifar: the airbench-style fast CNN for 32x32 colour images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from supcon.checkpoint import encoder_from_signature
from supcon.models.factory import ARCHITECTURES, build_encoder
from supcon.models.fast_cifar import FAST_CIFAR_WIDTHS, FastCIFARNet
from supcon.models.networks import SupConModel, model_signature

OUT_DIM = FAST_CIFAR_WIDTHS[-1]


def test_cifar_fast_is_a_registered_arch() -> None:
    assert "cifar-fast" in ARCHITECTURES
    encoder = build_encoder("cifar-fast", in_channels=3)
    assert isinstance(encoder, FastCIFARNet)
    assert (encoder.arch, encoder.in_channels, encoder.stem, encoder.width) == ("cifar-fast", 3, None, 1)
    assert encoder.out_dim == OUT_DIM == 192


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [8, 28, 32, 64])
def test_shapes_for_any_channels_and_size(channels: int, size: int) -> None:
    encoder = build_encoder("cifar-fast", in_channels=channels)
    out = encoder(torch.randn(2, channels, size, size))
    assert out.shape == (2, OUT_DIM)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


def test_non_square_and_odd_sizes() -> None:
    encoder = build_encoder("cifar-fast", in_channels=2)
    assert encoder(torch.randn(2, 2, 9, 31)).shape == (2, OUT_DIM)


def test_gradients_reach_every_parameter(forward_backward: Callable[..., torch.Tensor]) -> None:
    torch.manual_seed(0)
    encoder = build_encoder("cifar-fast", in_channels=3)
    assert forward_backward(encoder, torch.randn(4, 3, 32, 32)).shape == (4, OUT_DIM)


def test_width_multiplies_every_layer() -> None:
    narrow = build_encoder("cifar-fast", in_channels=3, width=1)
    wide = build_encoder("cifar-fast", in_channels=3, width=2)
    assert wide.out_dim == 2 * OUT_DIM
    assert wide(torch.randn(2, 3, 16, 16)).shape == (2, 2 * OUT_DIM)
    n_narrow = sum(p.numel() for p in narrow.parameters())
    n_wide = sum(p.numel() for p in wide.parameters())
    assert 3.5 * n_narrow < n_wide < 4.0 * n_narrow  # conv weights grow with width**2
    convs = [m for m in wide.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs][::2] == [2 * c for c in FAST_CIFAR_WIDTHS]


@pytest.mark.parametrize("kwargs, name", [({"width": 0}, "width"), ({"in_channels": 1.5}, "in_channels"),
                                          ({"stem": "tiny"}, "stem")])
def test_bad_arguments_name_the_argument(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        build_encoder("cifar-fast", **kwargs)


def test_ignores_stem() -> None:
    torch.manual_seed(0)
    a = build_encoder("cifar-fast", in_channels=3, stem="cifar").eval()
    torch.manual_seed(0)
    b = build_encoder("cifar-fast", in_channels=3, stem="imagenet").eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(a(x), b(x))
    assert model_signature(a) == model_signature(b)


def test_seeded_builds_are_identical() -> None:
    torch.manual_seed(7)
    a = build_encoder("cifar-fast", in_channels=3)
    torch.manual_seed(7)
    b = build_encoder("cifar-fast", in_channels=3)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0, msg=name)
    torch.manual_seed(8)
    c = build_encoder("cifar-fast", in_channels=3)
    assert not torch.equal(a.features[0][0].weight, c.features[0][0].weight)


def test_signature_rebuilds_the_encoder_from_a_saved_state(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SupConModel(build_encoder("cifar-fast", in_channels=1, width=2), feat_dim=8)
    signature = model_signature(model)
    assert signature == {"model": "supcon", "arch": "cifar-fast", "in_channels": 1, "stem": None, "width": 2,
                         "out_dim": 2 * OUT_DIM, "head": "mlp", "feat_dim": 8}
    model(torch.randn(4, 1, 16, 16))  # one training-mode pass moves the batch-norm statistics
    path = tmp_path / "state.pt"
    torch.save({"signature": signature, "encoder": model.encoder.state_dict()}, path)
    state = torch.load(path, weights_only=True)

    rebuilt = encoder_from_signature(state["signature"], path)
    rebuilt.load_state_dict(state["encoder"])
    assert model_signature(rebuilt) == {**model_signature(model.encoder)}
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(rebuilt.eval()(x), model.encoder.eval()(x))
