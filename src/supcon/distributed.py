"""torch.distributed helpers: joining the process group under torchrun, and a gather that
carries gradients back to the rank that owns each embedding.

With :func:`gather_contrast`, every rank's anchors are contrasted against the embeddings of the
whole global batch. Since the loss on rank r is a mean over its own anchors and DDP averages the
parameter gradients over ranks, the update equals the single-process update on the global batch
(for equal per-rank batches, which the sampler guarantees with drop_last).
"""

from __future__ import annotations

import datetime
import logging
import os

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "barrier", "all_gather_with_grad",
           "all_gather_no_grad", "all_gather_object", "all_reduce_mean", "gather_contrast",
           "shutdown"]

log = logging.getLogger(__name__)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: str = "auto") -> tuple[int, int, int]:
    """Joins the process group torchrun describes (WORLD_SIZE > 1); returns (rank, world, local_rank).

    NCCL when the run uses CUDA, gloo otherwise. Outside torchrun this is a no-op: (0, 1, 0).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return 0, 1, 0
    restarts = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    if restarts not in ("", "0") and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        log.warning(
            "torchrun restart %s reuses the agent's store: if joining the process group fails with "
            "'connection refused', launch torchrun with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 "
            "(pytorch/pytorch#135712)", restarts)
    if not is_distributed():
        use_cuda = torch.cuda.is_available() and not str(device).startswith("cpu")
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=30))
    return dist.get_rank(), dist.get_world_size(), local_rank


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shutdown() -> None:
    """Leaves the process group (after a final barrier, so no rank tears it down early)."""
    if is_distributed():
        dist.barrier()
        dist.destroy_process_group()


def all_gather_object(obj: object) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` outside a process group."""
    if not is_distributed():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def all_gather_no_grad(tensor: Tensor) -> Tensor:
    """Every rank's rows concatenated in rank order: (world * n, ...); no gradient.

    ``tensor`` must have the same shape on every rank. Outside a process group: ``tensor``.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean of ``tensor`` over ranks (a new tensor); ``tensor`` itself outside a group."""
    if not is_distributed() or dist.get_world_size() == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for each slice and returns the
    caller's own slice: the gradient reaches the rank that produced the embedding."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.world = dist.get_rank(), dist.get_world_size()
        parts = [torch.empty_like(tensor) for _ in range(ctx.world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        # A private copy: the incoming gradient buffer may be shared with other graph nodes.
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank]


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """(world, *tensor.shape): every rank's tensor; differentiable. Equal shapes on all ranks."""
    if not is_distributed():
        return tensor[None]
    return _GatherWithGrad.apply(tensor)


def gather_contrast(features: Tensor, labels: Tensor | None) -> dict[str, Tensor]:
    """The other ranks' embeddings (and labels) as the loss's extra contrast set.

    Args:
        features: (b, views, dim) this rank's embeddings.
        labels: (b,) or (b, classes) labels, or None (SimCLR: other ranks' rows are negatives).

    Returns:
        ``{"contrast_features": ((world-1) * b * views, dim), "contrast_labels": ...}`` ready to
        pass to :func:`supcon.supcon_loss`; empty outside a process group.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return {}
    me = dist.get_rank()
    everyone = all_gather_with_grad(features)  # (W, b, V, d)
    others = torch.cat([everyone[:me], everyone[me + 1:]])  # (W-1, b, V, d)
    views = features.shape[1]
    out = {"contrast_features": others.transpose(1, 2).reshape(-1, features.shape[-1])}
    if labels is not None:
        parts = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, labels.contiguous())
        other_labels = torch.stack(parts[:me] + parts[me + 1:])  # (W-1, b, ...)
        # Rows above are ordered (rank, view, sample): repeat labels per view to match.
        rep = other_labels[:, None].expand(-1, views, *other_labels.shape[1:])
        out["contrast_labels"] = rep.reshape(-1, *labels.shape[1:])
    return out
