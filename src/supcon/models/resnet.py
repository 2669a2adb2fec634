"""ResNet encoders (He et al., 2016) with CIFAR and ImageNet stems.

The SupCon paper (Khosla et al., 2020, Sec. 4) trains ResNet-50 and ResNet-200 encoders; on 32x32 CIFAR
images the usual choice is the "CIFAR stem" (a 3x3 stride-1 first convolution and no max-pool), while
ImageNet-sized inputs use the original 7x7 stride-2 convolution followed by a 3x3 stride-2 max-pool.

An encoder maps images ``(batch, channels, height, width)`` to representations ``(batch, out_dim)``: the
output of the last residual stage after global average pooling, flattened. ``width`` multiplies every
channel count (the base is ``64 * width``), as in the wide ResNets of SimCLR, so ``out_dim`` is
``512 * width`` for ResNet-18/34 and ``2048 * width`` for ResNet-50/101/200.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.init import check_positive_int, init_weights

STEMS: tuple[str, ...] = ("cifar", "imagenet")

#: Residual block type and number of blocks per stage for each ResNet depth.
RESNET_LAYERS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet200": ("bottleneck", (3, 24, 36, 3)),
}


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1x1 projection + BN (ResNet option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels: channels of the input map.
        planes: channels of both convolutions; the block outputs ``planes * expansion`` channels.
        stride: stride of the first convolution (and of the shortcut projection).

    Shapes:
        ``(B, in_channels, H, W) -> (B, planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion: int = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a residual connection (ResNet-50/101/200).

    The stride sits on the 3x3 convolution ("ResNet v1.5").

    Args:
        in_channels: channels of the input map.
        planes: channels of the inner convolutions; the block outputs ``planes * 4`` channels.
        stride: stride of the 3x3 convolution (and of the shortcut projection).

    Shapes:
        ``(B, in_channels, H, W) -> (B, 4 * planes, ceil(H / stride), ceil(W / stride))``.
    """

    expansion: int = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, out_channels)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.shortcut = _shortcut(in_channels, out_channels, stride)

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        """The batch norm closing the residual branch (zeroed by ``zero_init_residual``)."""
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


_BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


class ResNet(nn.Module):
    """A ResNet encoder: stem, four residual stages, global average pooling.

    Args:
        arch: one of ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"``, ``"resnet200"``.
        in_channels: channels of the input images (1 for grey-scale, 3 for RGB).
        stem: ``"cifar"`` (3x3 stride-1 conv, no max-pool) or ``"imagenet"`` (7x7 stride-2 conv and
            3x3 stride-2 max-pool).
        width: channel multiplier; stage ``i`` has ``64 * 2**i * width`` inner channels.
        zero_init_residual: start the last batch norm of every residual branch at gamma = 0, so each
            block begins as the identity (Goyal et al., 2017).

    Attributes:
        arch, in_channels, stem, width: the configuration (read by :func:`supcon.models.model_signature`).
        out_dim: size of the representation, ``512 * expansion * width``.

    Shapes:
        ``forward``: ``(B, in_channels, H, W)`` float -> ``(B, out_dim)``.

    Raises:
        ValueError: unknown ``arch`` or ``stem``, or ``in_channels`` / ``width`` not a positive int.
    """

    def __init__(
        self,
        arch: str = "resnet50",
        in_channels: int = 3,
        stem: str = "cifar",
        width: int = 1,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if arch not in RESNET_LAYERS:
            raise ValueError(f"arch must be one of {tuple(RESNET_LAYERS)}, got {arch!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        block_name, layers = RESNET_LAYERS[arch]
        block = _BLOCKS[block_name]

        self.arch = arch
        self.in_channels = in_channels
        self.stem = stem
        self.width = width

        base = 64 * width
        if stem == "cifar":
            self.stem_block = nn.Sequential(
                _conv3x3(in_channels, base), nn.BatchNorm2d(base), nn.ReLU(inplace=True)
            )
        else:
            self.stem_block = nn.Sequential(
                nn.Conv2d(in_channels, base, kernel_size=7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(base),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )

        channels = base
        stages = []
        for index, num_blocks in enumerate(layers):
            planes = base * 2**index
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(num_blocks):
                blocks.append(block(channels, planes, stride if block_index == 0 else 1))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim: int = channels

        init_weights(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(module.last_bn.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            x: ``(B, in_channels, H, W)`` float images (any memory format).

        Returns:
            ``(B, out_dim)`` representations.
        """
        x = self.stem_block(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.pool(x), 1)

