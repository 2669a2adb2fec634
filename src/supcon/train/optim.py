"""Optimisers (SGD with momentum, LARS, AdamW) and learning-rate schedules (warm-up + cosine)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from supcon.models import skips_weight_decay

__all__ = ["LARS", "OPTIMIZERS", "build_optimizer", "weight_decay_groups", "learning_rate", "set_learning_rate"]

#: The optimisers :func:`build_optimizer` builds.
OPTIMIZERS: tuple[str, ...] = ("sgd", "lars", "adamw")


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You et al. 2017) on top of SGD with momentum.

    Each parameter's update is scaled by the trust ratio ``eta * ||w|| / ||g + wd * w||``.
    Parameters of dimension 1 (biases, BatchNorm) skip both weight decay and adaptation, as in
    the SimCLR and SupCon reference recipes.

    Args:
        params: parameters or parameter groups.
        lr: learning rate.
        momentum: heavy-ball momentum.
        weight_decay: L2 penalty applied to adapted parameters.
        eta: trust coefficient.
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, eta: float = 0.001) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                        torch.ones_like(w_norm),
                    )
                    grad = grad * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def weight_decay_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict]:
    """Two parameter groups: decayed weights, and the parameters that skip weight decay (norms, biases,
    ViT position embeddings and class token: :func:`supcon.models.skips_weight_decay`)."""
    params = [p for p in params if p.requires_grad]
    return [{"params": [p for p in params if not skips_weight_decay(p)], "weight_decay": weight_decay},
            {"params": [p for p in params if skips_weight_decay(p)], "weight_decay": 0.0}]


def build_optimizer(params: Iterable[nn.Parameter] | Iterable[dict], name: str, lr: float,
                    momentum: float, weight_decay: float, fused: bool = False) -> torch.optim.Optimizer:
    """SGD (``fused`` on CUDA), LARS, or AdamW.

    AdamW (Loshchilov & Hutter 2019, betas (0.9, 0.999)) takes a flat iterable of parameters and
    applies ``weight_decay`` only to those :func:`weight_decay_groups` decays; ``momentum`` is unused.
    """
    if name == "sgd":
        kwargs = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
        if fused:
            kwargs["fused"] = True
        return torch.optim.SGD(params, **kwargs)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(weight_decay_groups(params, weight_decay), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'sgd', 'lars' or 'adamw', got {name!r}")


def learning_rate(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0,
                  schedule: str = "cosine", final_ratio: float = 0.001) -> float:
    """The learning rate at ``step`` (0-based): linear warm-up, then the schedule.

    ``cosine`` decays from ``base_lr`` to ``base_lr * final_ratio``; ``step`` divides by 10 at
    60 % and 80 % of training; ``constant`` stays at ``base_lr``.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    if schedule == "step":
        return base_lr * (0.1 ** (int(progress >= 0.6) + int(progress >= 0.8)))
    if schedule == "cosine":
        low = base_lr * final_ratio
        return low + 0.5 * (base_lr - low) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"schedule must be cosine, step or constant, got {schedule!r}")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
