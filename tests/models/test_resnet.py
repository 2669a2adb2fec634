"""Tests for supcon.models.resnet: block layout, stems, channels and zero-init residuals."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from supcon.models.factory import build_encoder
from supcon.models.resnet import BasicBlock, Bottleneck

#: block type, blocks per stage and representation size of each depth
EXPECTED_BLOCKS = {
    "resnet18": (BasicBlock, [2, 2, 2, 2], 512),
    "resnet34": (BasicBlock, [3, 4, 6, 3], 512),
    "resnet50": (Bottleneck, [3, 4, 6, 3], 2048),
    "resnet101": (Bottleneck, [3, 4, 23, 3], 2048),
    "resnet200": (Bottleneck, [3, 24, 36, 3], 2048),
}


@pytest.mark.parametrize("arch", list(EXPECTED_BLOCKS))
def test_resnet_block_layout(arch: str) -> None:
    block, layers, out_dim = EXPECTED_BLOCKS[arch]
    with torch.device("meta"):  # no memory, no init cost: cheap even for resnet200
        encoder = build_encoder(arch)
    assert encoder.out_dim == out_dim
    stages = [encoder.layer1, encoder.layer2, encoder.layer3, encoder.layer4]
    assert [len(stage) for stage in stages] == layers
    assert all(type(b) is block for stage in stages for b in stage)


def test_resnet18_param_count() -> None:
    encoder = build_encoder("resnet18", width=1)
    n_params = sum(p.numel() for p in encoder.parameters())
    assert 11_000_000 < n_params < 11_300_000  # torchvision's resnet18 minus fc and with a 3x3 stem


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_stems_and_channels(stem: str, in_channels: int, forward_backward: Callable[..., torch.Tensor]) -> None:
    encoder = build_encoder("resnet18", in_channels=in_channels, stem=stem)
    size = 8 if stem == "cifar" else 16
    out = forward_backward(encoder, torch.randn(2, in_channels, size, size))
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
