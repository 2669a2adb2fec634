"""Learning-rate schedules, LARS, AdamW (its weight-decay groups) and build_optimizer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from supcon.models import VisionTransformer
from supcon.train.optim import LARS, build_optimizer, learning_rate, set_learning_rate, weight_decay_groups


def test_warmup_is_linear_and_reaches_the_base_rate():
    base, warm, total = 0.8, 10, 100
    lrs = [learning_rate(s, total, base, warm, "cosine") for s in range(warm)]
    assert lrs[0] == pytest.approx(base / warm)
    assert lrs[-1] == pytest.approx(base)
    steps = [b - a for a, b in zip(lrs, lrs[1:])]
    assert all(d == pytest.approx(base / warm) for d in steps)
    # First step after warm-up is the peak of the cosine.
    assert learning_rate(warm, total, base, warm, "cosine") == pytest.approx(base)


def test_cosine_endpoints_and_midpoint():
    base, total = 0.5, 200
    assert learning_rate(0, total, base, 0, "cosine") == pytest.approx(base)
    assert learning_rate(total, total, base, 0, "cosine") == pytest.approx(base * 0.001)
    mid = base * 0.001 + 0.5 * (base - base * 0.001)
    assert learning_rate(total // 2, total, base, 0, "cosine") == pytest.approx(mid)
    lrs = [learning_rate(s, total, base, 0, "cosine") for s in range(total)]
    assert all(b <= a for a, b in zip(lrs, lrs[1:])), "cosine must decrease monotonically"
    assert lrs[-1] > base * 0.001
    assert learning_rate(10, 20, 1.0, 0, "cosine", final_ratio=0.0) == pytest.approx(0.5)


def test_cosine_with_warmup_measures_progress_after_warmup():
    base, warm, total = 1.0, 10, 110
    # Half-way through the post-warm-up steps the cosine is at its midpoint.
    expected = 0.001 + 0.5 * (1 - 0.001) * (1 + math.cos(math.pi * 0.5))
    assert learning_rate(warm + 50, total, base, warm, "cosine") == pytest.approx(expected)


def test_step_schedule_divides_by_ten_at_60_and_80_percent():
    base, total = 1.0, 100
    lr = [learning_rate(s, total, base, 0, "step") for s in range(total)]
    assert lr[0] == lr[59] == pytest.approx(1.0)
    assert lr[60] == lr[79] == pytest.approx(0.1)
    assert lr[80] == lr[99] == pytest.approx(0.01)


def test_constant_schedule_after_warmup():
    assert learning_rate(0, 50, 0.3, 5, "constant") == pytest.approx(0.06)
    assert all(learning_rate(s, 50, 0.3, 5, "constant") == 0.3 for s in range(5, 60))


def test_learning_rate_errors():
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, 10, 0.1, 0, "exponential")
    with pytest.raises(ValueError, match="total_steps"):
        learning_rate(0, 0, 0.1)


def test_set_learning_rate_respects_lr_scale():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr_scale": 0.1}], lr=1.0)
    set_learning_rate(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])


def _toy_problem(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 5, generator=gen)
    true_w = torch.randn(3, 5, generator=gen)
    y = x @ true_w.T + 0.5
    torch.manual_seed(seed)
    model = nn.Linear(5, 3)
    return model, x, y


def test_lars_decreases_loss_on_a_toy_problem():
    model, x, y = _toy_problem()
    opt = LARS(model.parameters(), lr=5.0, momentum=0.9, weight_decay=1e-5, eta=0.02)
    losses = []
    for _ in range(60):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(math.isfinite(v) for v in losses)


def test_lars_first_step_adapts_matrices_and_skips_vectors():
    model, x, y = _toy_problem(1)
    lr, wd, eta = 0.1, 0.01, 0.001
    opt = LARS(model.parameters(), lr=lr, momentum=0.9, weight_decay=wd, eta=eta)
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    gw, gb = model.weight.grad.clone(), model.bias.grad.clone()
    opt.step()
    # Bias (1-D): plain SGD, no weight decay, no trust ratio.
    torch.testing.assert_close(model.bias.detach(), b0 - lr * gb)
    # Weight (2-D): decayed gradient scaled by eta * ||w|| / ||g + wd * w||.
    g = gw + wd * w0
    trust = eta * w0.norm() / g.norm()
    torch.testing.assert_close(model.weight.detach(), w0 - lr * trust * g)


def test_lars_momentum_accumulates():
    p = nn.Parameter(torch.tensor([1.0, 2.0]))  # 1-D: no adaptation, so momentum is plain SGD's
    opt = LARS([p], lr=0.1, momentum=0.5)
    for _ in range(2):
        opt.zero_grad()
        p.sum().backward()
        opt.step()
    # buffers: 1, then 0.5 * 1 + 1 = 1.5; total displacement 0.1 * (1 + 1.5)
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, 2.0]) - 0.25)


def test_lars_zero_weights_fall_back_to_unit_trust():
    p = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([p], lr=0.1, momentum=0.0)
    p.sum().backward()
    opt.step()
    torch.testing.assert_close(p.detach(), torch.full((2, 2), -0.1))


def test_lars_state_dict_round_trip():
    model, x, y = _toy_problem()
    opt = LARS(model.parameters(), lr=0.1)
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
    fresh = LARS(model.parameters(), lr=0.1)
    fresh.load_state_dict(opt.state_dict())
    for p in model.parameters():
        torch.testing.assert_close(fresh.state[p]["momentum_buffer"], opt.state[p]["momentum_buffer"])


def test_build_optimizer_kinds_and_errors():
    model = nn.Linear(3, 2)
    sgd = build_optimizer(model.parameters(), "sgd", 0.1, 0.9, 1e-4)
    assert isinstance(sgd, torch.optim.SGD)
    assert sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["weight_decay"] == 1e-4
    lars = build_optimizer(model.parameters(), "lars", 0.1, 0.9, 1e-4)
    assert isinstance(lars, LARS)
    with pytest.raises(ValueError, match="optimizer must be 'sgd', 'lars' or 'adamw', got 'adam'"):
        build_optimizer(model.parameters(), "adam", 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="lr"):
        build_optimizer(model.parameters(), "lars", -0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="momentum"):
        build_optimizer(model.parameters(), "lars", 0.1, 1.5, 0.0)


def test_adamw_decays_weights_but_not_norms_biases_positions_or_the_class_token():
    vit = VisionTransformer("vit-tiny", in_channels=1, image_size=8, depth=1)
    opt = build_optimizer(vit.parameters(), "adamw", lr=1e-3, momentum=0.9, weight_decay=0.05)
    assert isinstance(opt, torch.optim.AdamW)
    decayed, skipped = opt.param_groups
    assert decayed["weight_decay"] == 0.05 and skipped["weight_decay"] == 0.0
    names = {id(p): name for name, p in vit.named_parameters()}
    no_decay = {names[id(p)] for p in skipped["params"]}
    decay = {names[id(p)] for p in decayed["params"]}
    assert no_decay == {"cls_token", "pos_embed", "patch_embed.bias", "norm.weight", "norm.bias",
                        *(f"blocks.0.{n}" for n in ("norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
                                                    "attn.qkv.bias", "attn.proj.bias", "mlp.0.bias", "mlp.2.bias"))}
    assert decay == {"patch_embed.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight",
                     "blocks.0.mlp.0.weight", "blocks.0.mlp.2.weight"}
    # frozen parameters are left out of both groups
    vit.cls_token.requires_grad_(False)
    assert sum(len(g["params"]) for g in weight_decay_groups(vit.parameters(), 0.1)) == len(names) - 1


def test_adamw_step_leaves_excluded_parameters_undecayed():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(1.0)
    opt = build_optimizer(layer.parameters(), "adamw", lr=0.1, momentum=0.9, weight_decay=0.5)
    layer.weight.grad, layer.bias.grad = torch.zeros_like(layer.weight), torch.zeros_like(layer.bias)
    opt.step()
    assert torch.allclose(layer.weight, torch.full_like(layer.weight, 1 - 0.1 * 0.5))
    assert torch.equal(layer.bias, torch.ones_like(layer.bias))
