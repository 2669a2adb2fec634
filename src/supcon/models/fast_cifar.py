"""A narrow airbench-style CNN encoder for 32x32 colour images that trains several times faster on a CPU.

In the spirit of Keller Jordan's airbench CIFAR-10 networks: a cheap stem conv at full resolution, then
three blocks of ``conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU`` that halve the resolution
early, and a global pool. Pooling sits right after the first conv of each stage, so batch norm,
GELU and the second conv run on the pooled map, and all but the stem conv run at 16x16 or less for a
32x32 input. The widths (16/48/96/192) are much narrower than airbench's 64/256/256: about 23 MFLOPs
per 32x32 image forward, and a SupCon training step about 4.5-5x cheaper per image than
:class:`supcon.models.small.SmallCNN` on a 2-core CPU (that one runs two convolutions at full
resolution, 77 MFLOPs). airbench's stem is a frozen conv initialised by whitening image
patches; here it is an ordinary learned conv, so the encoder needs no data to be built. airbench ends
in a global max-pool; this encoder averages, like the other encoders (in a short SupCon check on
CIFAR-10 the two were within noise of each other, averaging a little ahead).
"""

from __future__ import annotations

import torch
from torch import nn

from supcon.models.init import check_positive_int, init_weights

#: Channels of the stem and of the three blocks at ``width=1``; ``width`` multiplies each.
FAST_CIFAR_WIDTHS: tuple[int, int, int, int] = (16, 48, 96, 192)


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)


def _pool() -> nn.MaxPool2d:
    # ceil_mode keeps a 1x1 map at 1x1, so every input of at least 1x1 pixel fits.
    return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)


def _downsample(in_channels: int, out_channels: int) -> list[nn.Module]:
    """``conv -> 2x2 max-pool -> BN -> GELU``: the conv sees the full map, the rest a quarter of it."""
    return [_conv(in_channels, out_channels), _pool(), nn.BatchNorm2d(out_channels), nn.GELU()]


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    """One stage: a downsampling conv, then a conv-BN-GELU at the halved resolution."""
    return nn.Sequential(
        *_downsample(in_channels, out_channels),
        _conv(out_channels, out_channels),
        nn.BatchNorm2d(out_channels),
        nn.GELU(),
    )


class FastCIFARNet(nn.Module):
    """Stem conv and three conv blocks, each halving the resolution, then a global average pool.

    Layout at ``width=1`` (channels in brackets, sizes for a 32x32 input)::

        stem   conv3x3 [16] 32x32 -> maxpool -> BN -> GELU                        16x16
        block1 conv3x3 [48] -> maxpool -> BN -> GELU -> conv3x3 [48] -> BN -> GELU    8x8
        block2 conv3x3 [96] -> maxpool -> BN -> GELU -> conv3x3 [96] -> BN -> GELU    4x4
        block3 conv3x3 [192] -> maxpool -> BN -> GELU -> conv3x3 [192] -> BN -> GELU  2x2
        global average pool -> (B, 192)

    Every conv is 3x3 with padding 1 and no bias. The pools use ``ceil_mode`` and the last pool is
    adaptive, so any image size works (for 8x8 digits the maps go 4, 2, 1, 1).

    Args:
        in_channels: channels of the input images.
        width: channel multiplier for every layer (:data:`FAST_CIFAR_WIDTHS` times ``width``).

    Attributes:
        arch: ``"cifar-fast"``.
        in_channels, width: the configuration.
        stem: ``None`` (one stem only).
        out_dim: ``192 * width``.

    Shapes:
        ``forward``: ``(B, in_channels, H, W)`` float -> ``(B, 192 * width)``.

    Raises:
        ValueError: ``in_channels`` or ``width`` not a positive int.
    """

    def __init__(self, in_channels: int = 3, width: int = 1) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("width", width)
        self.arch = "cifar-fast"
        self.in_channels = in_channels
        self.stem: str | None = None
        self.width = width
        c0, c1, c2, c3 = (c * width for c in FAST_CIFAR_WIDTHS)
        self.features = nn.Sequential(
            nn.Sequential(*_downsample(in_channels, c0)),
            _block(c0, c1),
            _block(c1, c2),
            _block(c2, c3),
            nn.AdaptiveAvgPool2d(1),
        )
        self.out_dim: int = c3
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            x: ``(B, in_channels, H, W)`` float images, ``H, W >= 1``.

        Returns:
            ``(B, out_dim)`` representations.
        """
        return torch.flatten(self.features(x), 1)
