"""A small CNN encoder for tiny images (8x8 scikit-learn digits, 28x28 MNIST) that trains fast on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from supcon.models.init import check_positive_int, init_weights


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers, a 2x2 max-pool, global average pooling.

    Layout: ``conv(32w) -> conv(64w) -> maxpool 2x2 -> conv(128w) -> global average pool``, every conv
    3x3 with padding 1 followed by batch norm and ReLU. The last conv runs at half resolution (4x4 for
    8x8 digits, 14x14 for MNIST), which keeps a training step cheap on a CPU. Any input of at least
    2x2 pixels works.

    Args:
        in_channels: channels of the input images.
        width: channel multiplier.

    Attributes:
        arch: ``"small"``.
        in_channels, width: the configuration.
        stem: ``None`` (the small CNN has no stem variants).
        out_dim: ``128 * width``.

    Shapes:
        ``forward``: ``(B, in_channels, H, W)`` float -> ``(B, 128 * width)``.

    Raises:
        ValueError: ``in_channels`` or ``width`` not a positive int.
    """

    def __init__(self, in_channels: int = 1, width: int = 1) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        self.arch = "small"
        self.in_channels = in_channels
        self.stem: str | None = None
        self.width = width
        c1, c2, c3 = 32 * width, 64 * width, 128 * width
        self.features = nn.Sequential(
            *_conv_bn_relu(in_channels, c1),
            *_conv_bn_relu(c1, c2),
            nn.MaxPool2d(kernel_size=2, stride=2),
            *_conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
        )
        self.out_dim: int = c3
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            x: ``(B, in_channels, H, W)`` float images, ``H, W >= 2``.

        Returns:
            ``(B, out_dim)`` representations.
        """
        return torch.flatten(self.features(x), 1)
