"""Model zoo: ResNet, small CNN, fast CIFAR CNN and Vision Transformer encoders, projection heads, SupCon and cross-entropy models.

Example:
    >>> import torch
    >>> encoder = build_encoder("resnet18", in_channels=3, stem="cifar")
    >>> model = SupConModel(encoder, head="mlp", feat_dim=128)
    >>> model(torch.randn(4, 3, 32, 32)).shape        # normalised projections
    torch.Size([4, 128])
    >>> model.embed(torch.randn(4, 3, 32, 32)).shape  # representations for evaluation
    torch.Size([4, 512])
"""

from __future__ import annotations

from supcon.models.factory import ARCHITECTURES, build_encoder, is_vit
from supcon.models.fast_cifar import FAST_CIFAR_WIDTHS, FastCIFARNet
from supcon.models.heads import HEAD_KINDS, LinearClassifier, ProbeClassifier, ProjectionHead
from supcon.models.networks import CEModel, SupConModel, model_signature
from supcon.models.resnet import RESNET_LAYERS, STEMS, BasicBlock, Bottleneck, ResNet
from supcon.models.small import SmallCNN
from supcon.models.vit import VIT_CONFIGS, VIT_POOLS, VisionTransformer, skips_weight_decay, vit_patch_size

__all__ = [
    "ARCHITECTURES",
    "FAST_CIFAR_WIDTHS",
    "HEAD_KINDS",
    "RESNET_LAYERS",
    "STEMS",
    "VIT_CONFIGS",
    "VIT_POOLS",
    "BasicBlock",
    "Bottleneck",
    "CEModel",
    "FastCIFARNet",
    "LinearClassifier",
    "ProbeClassifier",
    "ProjectionHead",
    "ResNet",
    "SmallCNN",
    "SupConModel",
    "VisionTransformer",
    "build_encoder",
    "is_vit",
    "model_signature",
    "skips_weight_decay",
    "vit_patch_size",
]
