"""The one encoder factory: every architecture name and :func:`build_encoder`, which builds one by name."""

from __future__ import annotations

from torch import nn

from supcon.models.fast_cifar import FastCIFARNet
from supcon.models.init import check_positive_int
from supcon.models.resnet import RESNET_LAYERS, STEMS, ResNet
from supcon.models.small import SmallCNN
from supcon.models.vit import DEFAULT_IMAGE_SIZE, VIT_CONFIGS, VisionTransformer

#: Every encoder name :func:`build_encoder` accepts: the ResNet depths of :data:`RESNET_LAYERS`, then
#: ``"small"``, ``"cifar-fast"`` and the Vision Transformers of :data:`VIT_CONFIGS`. The one list of
#: architecture names: other modules import it rather than repeat it.
ARCHITECTURES: tuple[str, ...] = (*RESNET_LAYERS, "small", "cifar-fast", *VIT_CONFIGS)


def is_vit(arch: str) -> bool:
    """Whether ``arch`` names a Vision Transformer (trained with AdamW by default)."""
    return arch in VIT_CONFIGS


def build_encoder(
    arch: str,
    in_channels: int = 3,
    stem: str | None = "cifar",
    width: int = 1,
    zero_init_residual: bool = False,
    image_size: int | None = None,
) -> nn.Module:
    """Build an encoder by name.

    Args:
        arch: one of :data:`ARCHITECTURES`.
        in_channels: channels of the input images (1 grey-scale, 3 RGB; any positive int).
        stem: ``"cifar"`` (3x3 stride-1 conv, no max-pool) or ``"imagenet"`` (7x7 stride-2 conv and
            3x3 stride-2 max-pool) for ResNets. Ignored by ``"small"``, ``"cifar-fast"`` and ViTs (still
            checked when given); ``None`` means ``"cifar"`` for ResNets.
        width: channel multiplier (ResNet base width ``64 * width``; small CNN ``out_dim = 128 * width``;
            cifar-fast ``out_dim = 192 * width``; ViT dim and heads ``x width``).
        zero_init_residual: zero the last batch-norm gamma of every residual block (ResNets only).
        image_size: side of the images, for ViTs (patch size and position-embedding grid; ``None``:
            32, other sizes then interpolate the position embeddings). Ignored by CNNs (still checked).

    Returns:
        A module mapping ``(B, in_channels, H, W)`` float images to ``(B, out_dim)`` features, with int
        attribute ``out_dim`` and configuration attributes ``arch``, ``in_channels``, ``stem``, ``width``.

    Raises:
        ValueError: unknown ``arch`` or ``stem``, or ``in_channels`` / ``width`` not a positive int.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {ARCHITECTURES}, got {arch!r}")
    if stem is not None and stem not in STEMS:
        raise ValueError(f"stem must be one of {STEMS} or None, got {stem!r}")
    check_positive_int("in_channels", in_channels)
    check_positive_int("width", width)
    if image_size is not None:
        check_positive_int("image_size", image_size)
    if is_vit(arch):
        return VisionTransformer(arch, in_channels=in_channels, width=width,
                                 image_size=image_size if image_size is not None else DEFAULT_IMAGE_SIZE)
    if arch == "small":
        return SmallCNN(in_channels=in_channels, width=width)
    if arch == "cifar-fast":
        return FastCIFARNet(in_channels=in_channels, width=width)
    return ResNet(
        arch,
        in_channels=in_channels,
        stem=stem if stem is not None else "cifar",
        width=width,
        zero_init_residual=zero_init_residual,
    )

