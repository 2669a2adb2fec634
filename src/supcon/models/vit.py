"""A Vision Transformer encoder (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", Sec. 3.1).

The image is cut into ``P x P`` patches, each flattened and projected to ``dim`` (one strided
convolution), a learned class token is prepended, learned position embeddings are added, and
``depth`` pre-norm transformer blocks follow (eq. 2-3 of the paper)::

    x = x + MSA(LN(x))
    x = x + MLP(LN(x))          # MLP: Linear(dim, 4 dim) -> GELU -> Linear(4 dim, dim)

A final LayerNorm is applied and the representation is the class token's output (eq. 4) or, with
``pool="mean"``, the mean of the patch tokens.

Patch size rule (:func:`vit_patch_size`): 4 for images of side <= 32 (8x8 patches for 32x32, 7x7 for
MNIST); above that the smallest divisor of the side giving at most 14 x 14 patches when that grid has
at least 8 x 8 (16 for 224, 8 for 64 or 96); otherwise ``ceil(side / 14)`` (the convolution drops the
last ``side mod P`` rows and columns).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from supcon.models.init import check_positive_int

__all__ = ["VIT_CONFIGS", "VIT_POOLS", "VisionTransformer", "vit_patch_size", "skips_weight_decay"]

#: ``arch -> (dim, depth, heads)`` at width 1 (ViT-Ti and ViT-S of Touvron et al. 2021, head size 64).
VIT_CONFIGS: dict[str, tuple[int, int, int]] = {"vit-tiny": (192, 12, 3), "vit-small": (384, 12, 6)}
VIT_POOLS: tuple[str, ...] = ("cls", "mean")
#: The image side a ViT is built for when the caller does not say (position embeddings are
#: interpolated for other sizes).
DEFAULT_IMAGE_SIZE = 32
_NO_WEIGHT_DECAY = "_supcon_no_weight_decay"


def skips_weight_decay(param: nn.Parameter) -> bool:
    """Whether an optimiser should not decay ``param``: a norm's weight, a bias (any 0-D or 1-D
    parameter), or a parameter marked by its module (ViT position embeddings and class token)."""
    return param.ndim <= 1 or getattr(param, _NO_WEIGHT_DECAY, False)


def _no_decay(param: nn.Parameter) -> nn.Parameter:
    setattr(param, _NO_WEIGHT_DECAY, True)
    return param


def vit_patch_size(image_size: int) -> int:
    """The patch side for square images of side ``image_size`` (see the module docstring)."""
    check_positive_int("image_size", image_size)
    if image_size <= 32:
        return 4
    for patch in range(1, image_size + 1):
        if image_size % patch == 0 and image_size // patch <= 14:
            if image_size // patch >= 8:
                return patch
            break
    return math.ceil(image_size / 14)


class _Attention(nn.Module):
    """Multi-head self-attention: one qkv projection, scaled dot products per head, output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # (b, heads, n, d / heads)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    """A pre-norm transformer block: ``x + MSA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """ViT encoder: patch embedding, class token, learned position embeddings, pre-norm blocks.

    Args:
        arch: ``"vit-tiny"`` (dim 192, depth 12, 3 heads) or ``"vit-small"`` (384, 12, 6).
        in_channels: channels of the input images.
        image_size: the side of the (square) images it is built for: sets the patch size
            (:func:`vit_patch_size`) and the position-embedding grid. Other sizes work too: the
            position embeddings are interpolated (bicubic) to their grid.
        width: multiplies the dim and the number of heads (head size stays 64).
        pool: ``"cls"`` (the class token's output, as in the paper) or ``"mean"`` (mean of the
            patch tokens; the class token is still there, so both have the same weights).
        depth: number of blocks (default: the arch's); a smaller one makes tests fast.

    Attributes:
        arch, in_channels, width, image_size, patch_size, pool: the configuration.
        stem: ``None`` (no stem variants).
        out_dim: the token dimension.

    Shapes:
        ``forward``: ``(B, in_channels, H, W)`` float, ``H, W >= patch_size`` -> ``(B, out_dim)``.
    """

    def __init__(self, arch: str = "vit-tiny", in_channels: int = 3, image_size: int = DEFAULT_IMAGE_SIZE,
                 width: int = 1, pool: str = "cls", depth: int | None = None, mlp_ratio: int = 4) -> None:
        super().__init__()
        if arch not in VIT_CONFIGS:
            raise ValueError(f"arch must be one of {tuple(VIT_CONFIGS)}, got {arch!r}")
        if pool not in VIT_POOLS:
            raise ValueError(f"pool must be one of {VIT_POOLS}, got {pool!r}")
        for name, value in (("in_channels", in_channels), ("image_size", image_size), ("width", width)):
            check_positive_int(name, value)
        dim, default_depth, heads = VIT_CONFIGS[arch]
        dim, heads, depth = dim * width, heads * width, check_positive_int("depth", depth or default_depth)
        self.arch, self.in_channels, self.width, self.pool = arch, in_channels, width, pool
        self.stem: str | None = None
        self.image_size, self.patch_size = image_size, vit_patch_size(image_size)
        self.grid = max(1, image_size // self.patch_size)
        self.out_dim: int = dim
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.cls_token = _no_decay(nn.Parameter(torch.zeros(1, 1, dim)))
        self.pos_embed = _no_decay(nn.Parameter(torch.zeros(1, 1 + self.grid * self.grid, dim)))
        self.blocks = nn.Sequential(*(_Block(dim, heads, mlp_ratio) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        w = self.patch_embed.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as the linear projection of flattened patches
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def position_embeddings(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """``(1, 1 + grid_h * grid_w, dim)``: the learned embeddings, interpolated to another grid."""
        if (grid_h, grid_w) == (self.grid, self.grid):
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return torch.cat([cls_pos, patch_pos.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode images.

        Args:
            x: ``(B, in_channels, H, W)`` float images.

        Returns:
            ``(B, out_dim)`` representations.
        """
        if x.shape[-2] < self.patch_size or x.shape[-1] < self.patch_size:
            raise ValueError(f"images of {x.shape[-2]}x{x.shape[-1]} are smaller than one "
                             f"{self.patch_size}x{self.patch_size} patch")
        patches = self.patch_embed(x)  # (B, dim, H / P, W / P)
        grid_h, grid_w = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)  # (B, N, dim)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = self.norm(self.blocks(tokens + self.position_embeddings(grid_h, grid_w)))
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)
