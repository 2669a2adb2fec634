"""A momentum (key) encoder and a label-aware FIFO queue of its embeddings.

SupCon's positives and negatives come from the batch (Khosla et al. 2020 use batches of up to
6144). A memory queue, as in MoCo (He et al., CVPR 2020, arXiv 1911.05722), lets a small batch
contrast against many more embeddings: a slowly moving copy of the network (the key encoder,
``k <- m k + (1 - m) q``) embeds one view of every image, and the last ``size`` of those
embeddings, with their labels, join the loss as extra contrast rows. For SupCon a queue entry is a
positive of every anchor with its label; for SimCLR every queue entry is a negative. Queue entries
are constants (no gradient), and they are never anchors.

* :class:`LabelQueue`: the FIFO ring buffer of (embedding, label).
* :class:`MomentumEncoder`: the EMA copy of a model.
* :class:`MomentumQueue`: both, wired for the training loop (see :func:`supcon.pretrain`).

Under torchrun every rank enqueues the keys of the whole global batch (gathered in rank order), so
the queue is identical on all ranks and rank 0's checkpoint resumes all of them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supcon import distributed as dist_utils

__all__ = ["LabelQueue", "MomentumEncoder", "MomentumQueue", "UNLABELED"]

#: The label stored for entries enqueued without labels (SimCLR); it matches no class.
UNLABELED = -1


def _check_momentum(momentum: float) -> float:
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
        raise ValueError(f"momentum must be a number in [0, 1), got {momentum!r}")
    return float(momentum)


class LabelQueue:
    """A FIFO ring buffer of ``size`` (embedding, label) pairs.

    Args:
        size: capacity in rows (>= 1); it must hold at least one (global) batch of keys.
        dim: embedding size.
        device: where the buffers live.
        dtype: embedding dtype (float32 by default; keys from bf16 autocast are stored upcast).

    Attributes:
        filled: rows held so far (at most ``size``).
        ptr: the slot the next row is written to (the oldest row once the queue is full).
    """

    def __init__(self, size: int, dim: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        for name, value in (("size", size), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.size = size
        self.dim = dim
        self.features = torch.zeros(size, dim, device=device, dtype=dtype)
        self.labels = torch.full((size,), UNLABELED, device=device, dtype=torch.long)
        self.ptr = 0
        self.filled = 0

    def __len__(self) -> int:
        return self.filled

    @torch.no_grad()
    def enqueue(self, features: Tensor, labels: Tensor | None = None) -> None:
        """Appends rows, overwriting the oldest ones once the queue is full.

        Args:
            features: (n, dim) embeddings; stored detached.
            labels: (n,) integer labels, or None to store :data:`UNLABELED`.

        Raises:
            ValueError: wrong shapes, or ``n > size`` (the queue must hold a whole batch).
        """
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(f"features must have shape (n, {self.dim}), got {tuple(features.shape)}")
        n = features.shape[0]
        if n > self.size:
            raise ValueError(
                f"cannot enqueue {n} rows into a queue of size {self.size}: the queue must hold at "
                "least one global batch (raise queue_size or lower batch_size)")
        if labels is None:
            labels = torch.full((n,), UNLABELED, dtype=torch.long, device=self.labels.device)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"labels must have shape ({n},) to match features, got {tuple(labels.shape)}")
        if labels.is_floating_point():
            raise ValueError(f"labels must be integers, got {labels.dtype}")
        if n == 0:
            return
        slots = (self.ptr + torch.arange(n, device=self.features.device)) % self.size
        self.features[slots] = features.detach().to(self.features.device, self.features.dtype)
        self.labels[slots.to(self.labels.device)] = labels.to(self.labels.device, torch.long)
        self.ptr = (self.ptr + n) % self.size
        self.filled = min(self.size, self.filled + n)

    def get(self) -> tuple[Tensor, Tensor]:
        """The rows held, oldest first: ((filled, dim) features, (filled,) labels); no gradient."""
        if self.filled < self.size:
            return self.features[: self.filled], self.labels[: self.filled]
        if self.ptr == 0:
            return self.features, self.labels
        order = (self.ptr + torch.arange(self.size, device=self.features.device)) % self.size
        return self.features[order], self.labels[order.to(self.labels.device)]

    def state_dict(self) -> dict[str, Any]:
        return {"features": self.features.clone(), "labels": self.labels.clone(),
                "ptr": self.ptr, "filled": self.filled}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; a different size or dim is an error naming both."""
        features, labels = state["features"], state["labels"]
        if tuple(features.shape) != (self.size, self.dim):
            raise ValueError(
                f"saved queue holds {tuple(features.shape)} (size, dim), this queue is "
                f"({self.size}, {self.dim}): resume with the same queue_size and feat_dim")
        if tuple(labels.shape) != (self.size,):
            raise ValueError(f"saved queue labels have shape {tuple(labels.shape)}, expected ({self.size},)")
        ptr, filled = int(state["ptr"]), int(state["filled"])
        if not (0 <= ptr < self.size and 0 <= filled <= self.size):
            raise ValueError(f"saved queue pointer {ptr} / fill {filled} out of range for size {self.size}")
        self.features.copy_(features)
        self.labels.copy_(labels)
        self.ptr, self.filled = ptr, filled


class MomentumEncoder(nn.Module):
    """An exponential moving average of a model: the key encoder of MoCo.

    Holds a deep copy of ``model`` without gradients. :meth:`update` sets every parameter to
    ``m * key + (1 - m) * query`` and copies every buffer (BatchNorm running statistics) from the
    query model. The forward pass runs the copy in whatever mode it is in (train mode by
    default, so BatchNorm uses batch statistics, as MoCo's key encoder does), without gradient.

    Args:
        model: the query model to follow (not a DDP wrapper: pass the module inside it).
        momentum: ``m`` in [0, 1); 0 makes the key encoder a copy of the latest query model.
    """

    def __init__(self, model: nn.Module, momentum: float = 0.999) -> None:
        super().__init__()
        self.momentum = _check_momentum(momentum)
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model`` (same architecture as the copy)."""
        keys = dict(self.module.named_parameters())
        queries = dict(model.named_parameters())
        if keys.keys() != queries.keys():
            raise ValueError("model does not match the key encoder's architecture (parameter names differ)")
        names = list(keys)
        k = [keys[n] for n in names]
        q = [queries[n].detach() for n in names]
        m = self.momentum
        # m * k + (1 - m) * q, each product rounded separately (reproducible against a hand formula).
        torch._foreach_mul_(k, m)
        torch._foreach_add_(k, torch._foreach_mul(q, 1.0 - m))
        key_buffers = dict(self.module.named_buffers())
        for name, buf in model.named_buffers():
            if name not in key_buffers:
                raise ValueError(f"model buffer {name!r} has no counterpart in the key encoder")
            key_buffers[name].copy_(buf)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class MomentumQueue:
    """A key encoder and a label queue, as the training loop uses them.

    Per step::

        keys = mq.encode(last_view_images)              # (b, dim), no grad (inside autocast)
        contrast = mq.contrast_inputs(keys, labels, contrast)   # queue rows join the contrast set
        loss = supcon_loss(features, labels, **contrast)
        mq.enqueue_last()                               # this step's keys (global batch) enter
        ... optimizer.step(); mq.update_key_encoder()

    Args:
        model: the query model (its forward gives ``(n, dim)`` embeddings), not a DDP wrapper.
        size: queue capacity; at least ``batch_size`` (the global batch).
        momentum: key-encoder EMA momentum in [0, 1).
        dim: embedding size.
        device: where the key encoder and the queue live.
        batch_size: the global batch, checked against ``size`` when given.
        dtype: dtype of the stored keys (float32 by default, also under bf16 autocast).
    """

    def __init__(self, model: nn.Module, size: int, momentum: float, dim: int,
                 device: str | torch.device = "cpu", *, batch_size: int | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        if batch_size is not None and size < batch_size:
            raise ValueError(f"queue size ({size}) must be at least the batch size ({batch_size})")
        self.model = model
        self.key_encoder = MomentumEncoder(model, momentum).to(device)
        self.queue = LabelQueue(size, dim, device, dtype)
        self._pending: tuple[Tensor, Tensor | None] | None = None

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """Key embeddings of ``images`` (n, C, H, W), L2-normalised, in the queue's dtype: (n, dim)."""
        return F.normalize(self.key_encoder(images).to(self.queue.features.dtype), dim=1)

    def contrast_inputs(self, keys: Tensor, labels: Tensor | None,
                        contrast: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The loss's extra contrast set: ``contrast`` (e.g. other ranks' rows) plus the queue.

        Remembers ``keys`` and ``labels`` for :meth:`enqueue_last`; the queue itself is read as
        it was before this step, so a step never contrasts with its own keys.

        Args:
            keys: (b, dim) this rank's keys from :meth:`encode`.
            labels: (b,) labels (SupCon: queue rows with the same label are positives), or None
                (SimCLR: queue rows are negatives).
            contrast: ``{"contrast_features", "contrast_labels"}`` already collected, or None.

        Returns:
            A new dict for ``supcon_loss(features, labels, **result)``.
        """
        self._pending = (keys.detach(), None if labels is None else labels.detach())
        out = dict(contrast or {})
        if len(self.queue) == 0:
            return out
        q_feats, q_labels = self.queue.get()
        before = out.get("contrast_features")
        out["contrast_features"] = q_feats if before is None else torch.cat(
            [before, q_feats.to(before.dtype)])
        if labels is not None:
            if labels.ndim != 1:
                raise ValueError(f"the queue holds one integer label per row; labels has shape {tuple(labels.shape)}")
            before_labels = out.get("contrast_labels")
            q_labels = q_labels.to(labels.device, labels.dtype)
            out["contrast_labels"] = q_labels if before_labels is None else torch.cat([before_labels, q_labels])
        return out

    def enqueue_last(self) -> None:
        """Enqueues the keys (and labels) of the last :meth:`contrast_inputs` call.

        Under torchrun the global batch's keys are gathered in rank order first (a collective:
        every rank must call this)."""
        if self._pending is None:
            raise RuntimeError("enqueue_last() called before contrast_inputs()")
        keys, labels = self._pending
        self._pending = None
        if labels is None:
            labels = torch.full((keys.shape[0],), UNLABELED, dtype=torch.long, device=keys.device)
        self.queue.enqueue(dist_utils.all_gather_no_grad(keys), dist_utils.all_gather_no_grad(labels))

    def update_key_encoder(self) -> None:
        """One EMA step of the key encoder towards the query model (after each optimizer step)."""
        self.key_encoder.update(self.model)

    def state_dict(self) -> dict[str, Any]:
        """{"key_encoder": state_dict, "queue": LabelQueue state}: the checkpoint's extra state."""
        return {"key_encoder": self.key_encoder.module.state_dict(), "queue": self.queue.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "key_encoder" not in state or "queue" not in state:
            raise ValueError(
                "checkpoint has no momentum-queue state (key_encoder, queue): it was written "
                "without --queue-size; resume with the same queue settings")
        self.key_encoder.module.load_state_dict(state["key_encoder"])
        self.queue.load_state_dict(state["queue"])
