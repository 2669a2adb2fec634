"""The Vision Transformer encoder: shapes, the patch rule, pooling, interpolated positions, training, rebuild."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from supcon.checkpoint import encoder_from_signature
from supcon.models import (ARCHITECTURES, SupConModel, VisionTransformer, build_encoder, is_vit, model_signature,
                           skips_weight_decay, vit_patch_size)


def _tiny_vit(**kwargs) -> VisionTransformer:
    return VisionTransformer(**{"arch": "vit-tiny", "depth": 1, **kwargs})


@pytest.mark.parametrize("image_size, channels", [(32, 3), (32, 1), (28, 1), (28, 3)])
def test_shapes_for_32_and_28_pixel_images_of_1_and_3_channels(image_size, channels):
    vit = _tiny_vit(in_channels=channels, image_size=image_size)
    out = vit(torch.randn(2, channels, image_size, image_size))
    assert out.shape == (2, 192) and vit.out_dim == 192
    assert vit.patch_size == 4 and vit.grid == image_size // 4
    assert vit.pos_embed.shape == (1, 1 + (image_size // 4) ** 2, 192)


def test_the_archs_built_by_name_have_the_papers_sizes():
    assert {"vit-tiny", "vit-small"} <= set(ARCHITECTURES) and is_vit("vit-small") and not is_vit("resnet18")
    tiny, small = build_encoder("vit-tiny"), build_encoder("vit-small", in_channels=1, image_size=28)
    assert (tiny.out_dim, len(tiny.blocks), tiny.blocks[0].attn.heads) == (192, 12, 3)
    assert (small.out_dim, len(small.blocks), small.blocks[0].attn.heads) == (384, 12, 6)
    assert small.blocks[0].mlp[0].out_features == 4 * 384  # MLP ratio 4
    assert (tiny.image_size, small.image_size, small.in_channels) == (32, 28, 1)
    assert build_encoder("vit-tiny", width=2).out_dim == 384


@pytest.mark.parametrize("side, patch", [(8, 4), (28, 4), (32, 4), (64, 8), (96, 8), (224, 16), (384, 32),
                                         (97, 7)])
def test_patch_rule(side, patch):
    assert vit_patch_size(side) == patch
    if side > 32:
        assert 7 <= side // patch <= 14


def test_mean_pooling_and_class_token_differ_on_the_same_weights():
    torch.manual_seed(0)
    cls_vit = _tiny_vit(in_channels=1, image_size=8)
    mean_vit = _tiny_vit(in_channels=1, image_size=8, pool="mean")
    mean_vit.load_state_dict(cls_vit.state_dict())
    x = torch.randn(3, 1, 8, 8)
    tokens = cls_vit.norm(cls_vit.blocks(torch.cat([cls_vit.cls_token.expand(3, -1, -1),
                                                    cls_vit.patch_embed(x).flatten(2).transpose(1, 2)], 1)
                                         + cls_vit.pos_embed))
    assert torch.allclose(cls_vit(x), tokens[:, 0], atol=1e-6)
    assert torch.allclose(mean_vit(x), tokens[:, 1:].mean(1), atol=1e-6)


def test_other_image_sizes_interpolate_the_position_embeddings():
    vit = _tiny_vit(image_size=32)
    assert vit(torch.randn(2, 3, 48, 40)).shape == (2, 192)
    pos = vit.position_embeddings(8, 8)
    assert pos is vit.pos_embed and vit.position_embeddings(12, 10).shape == (1, 1 + 120, 192)
    with pytest.raises(ValueError, match="smaller than one 4x4 patch"):
        vit(torch.randn(1, 3, 2, 2))


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="pool must be one of"):
        _tiny_vit(pool="max")
    with pytest.raises(ValueError, match="arch must be one of"):
        VisionTransformer("vit-huge")
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        build_encoder("vit-tiny", image_size=0)


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    vit = _tiny_vit(in_channels=1, image_size=8)
    head = torch.nn.Linear(vit.out_dim, 4)
    x, y = torch.randn(32, 1, 8, 8), torch.arange(32) % 4
    x = x + y.view(-1, 1, 1, 1).float()  # a learnable class signal
    opt = torch.optim.AdamW([*vit.parameters(), *head.parameters()], lr=1e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(head(vit(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_position_embeddings_and_class_token_are_marked_for_no_weight_decay():
    vit = _tiny_vit()
    skipped = {name for name, p in vit.named_parameters() if skips_weight_decay(p)}
    assert {"pos_embed", "cls_token", "norm.weight", "norm.bias", "patch_embed.bias"} <= skipped
    assert "patch_embed.weight" not in skipped and "blocks.0.attn.qkv.weight" not in skipped


def test_the_signature_rebuilds_the_same_vit(tmp_path):
    vit = build_encoder("vit-tiny", in_channels=1, image_size=28)
    sig = model_signature(SupConModel(vit, feat_dim=16))
    assert sig["image_size"] == 28 and sig["arch"] == "vit-tiny"
    rebuilt = encoder_from_signature(sig, tmp_path / "checkpoint.pt")
    rebuilt.load_state_dict(vit.state_dict())  # same keys and shapes
    assert model_signature(rebuilt) == model_signature(vit)
    # CNN signatures do not gain the key
    assert "image_size" not in model_signature(build_encoder("small", in_channels=1))
