"""Tests for supcon.models.init: the positive-int check and the Kaiming initialisation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from supcon.models.factory import build_encoder
from supcon.models.init import check_positive_int, init_weights


def test_kaiming_init_scale() -> None:
    torch.manual_seed(0)
    encoder = build_encoder("resnet18")
    conv = encoder.layer3[0].conv1  # 3x3, fan_out = out_channels * 9
    expected_std = (2.0 / (conv.out_channels * 9)) ** 0.5
    assert abs(conv.weight.std().item() - expected_std) / expected_std < 0.05


@pytest.mark.parametrize("value", [0, -3, 1.5, True, "2", None])
def test_check_positive_int_names_argument_and_value(value: object) -> None:
    with pytest.raises(ValueError, match="width must be a positive int") as info:
        check_positive_int("width", value)
    assert repr(value) in str(info.value)
    assert check_positive_int("width", 7) == 7


def test_init_weights_resets_norms_and_conv_bias() -> None:
    module = nn.Sequential(nn.Conv2d(2, 4, 3, bias=True), nn.BatchNorm2d(4), nn.GroupNorm(2, 4))
    for param in module.parameters():
        nn.init.constant_(param, 0.5)
    init_weights(module)
    conv, bn, gn = module
    assert torch.all(conv.bias == 0) and conv.weight.std() > 0
    for norm in (bn, gn):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
