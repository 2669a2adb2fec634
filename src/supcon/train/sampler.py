"""Which images go into each training batch: random, class-balanced or m-per-class.

Every epoch's GLOBAL batches are a function of ``(seed, epoch)`` and the training labels only, so a run
resumed at an epoch boundary draws the same batches with no sampler state in the checkpoint, and every
rank draws the same ones; each rank then takes its contiguous ``batch_size / world`` slice of every
global batch (:func:`rank_slices`), so the union of the slices is the global batch.

- ``random``: a permutation of the training set split into batches (the default; the last partial
  batch is dropped).
- ``class-balanced``: every image of every batch is drawn by picking a class uniformly at random, then
  an image of that class uniformly at random (with replacement): rare classes are seen as often as
  common ones.
- ``m-per-class``: every batch holds ``batch_size / M`` distinct classes (drawn uniformly among the
  classes with at least ``M`` images) with ``M`` distinct images each, so every anchor has at least
  ``M - 1`` same-class positives besides its own views. Each class's images are taken from its own
  reshuffled stream, so all of them are used before any repeats.

The new samplers give an epoch the same number of steps as ``random``: ``N // batch_size``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from supcon.config import SAMPLERS, ConfigError

__all__ = ["SAMPLERS", "EpochSampler", "epoch_batches", "rank_slices", "positive_counts"]


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def rank_slices(batches: Tensor, rank: int = 0, world_size: int = 1) -> list[Tensor]:
    """Each global batch's contiguous ``1 / world_size`` share for ``rank``.

    Args:
        batches: ``(steps, batch_size)`` global index batches.
    """
    batch_size = batches.shape[1]
    if batch_size % world_size:
        raise ConfigError(f"batch_size ({batch_size}) must be divisible by the world size ({world_size})")
    per_rank = batch_size // world_size
    return list(batches[:, rank * per_rank:(rank + 1) * per_rank].unbind(0))


def _random_order(n: int, epoch: int, seed: int, shuffle: bool) -> Tensor:
    return torch.randperm(n, generator=_generator(seed, epoch)) if shuffle else torch.arange(n)


def _check_fits(n: int, batch_size: int) -> None:
    if n < batch_size:
        raise ConfigError(f"batch_size ({batch_size}) is larger than the training set ({n} images): "
                          "lower --batch-size")


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0,
                  world_size: int = 1, drop_last: bool = True, shuffle: bool = True) -> list[Tensor]:
    """Index batches for one epoch of the ``random`` sampler: a permutation seeded by (seed, epoch),
    split across ranks.

    ``batch_size`` is the global batch; each rank gets its contiguous ``batch_size / world``
    slice of every global batch. Reshuffles every epoch; identical on every rank. Without
    ``drop_last`` every rank gets the whole batches, the last one shorter.
    """
    if batch_size % world_size:
        raise ConfigError(f"batch_size ({batch_size}) must be divisible by the world size ({world_size})")
    order = _random_order(n, epoch, seed, shuffle)
    if not drop_last:
        return list(order.split(batch_size))
    _check_fits(n, batch_size)
    return rank_slices(order[: n - n % batch_size].view(-1, batch_size), rank, world_size)


class EpochSampler:
    """The global batches of every epoch for one training set (see the module docstring).

    Args:
        labels: ``(N,)`` class indices of the training set (any device; kept on the CPU here).
        batch_size: the global batch.
        kind: one of :data:`SAMPLERS`.
        m_per_class: images per class in a batch (``m-per-class`` only).
        seed: the run's seed.

    Raises:
        ConfigError: a batch larger than the training set, or (m-per-class) a batch size that ``M``
            does not divide, or fewer than ``batch_size / M`` classes with ``M`` images or more.
    """

    def __init__(self, labels: Tensor, batch_size: int, kind: str = "random", m_per_class: int = 2,
                 seed: int = 0) -> None:
        if kind not in SAMPLERS:
            raise ConfigError(f"sampler must be one of {SAMPLERS}, got {kind!r}")
        self.labels = labels.detach().to("cpu", torch.int64)
        self.n, self.batch_size, self.kind, self.m, self.seed = len(self.labels), batch_size, kind, m_per_class, seed
        _check_fits(self.n, batch_size)
        self.steps = self.n // batch_size
        counts = torch.bincount(self.labels, minlength=1)
        self.order = torch.argsort(self.labels, stable=True)  # images grouped by class
        self.starts = torch.cumsum(counts, 0) - counts
        self.counts = counts
        if kind == "m-per-class":
            self._check_m_per_class()

    def _check_m_per_class(self) -> None:
        if self.m < 2 or self.batch_size % self.m:
            raise ConfigError(f"--m-per-class must be >= 2 and divide --batch-size ({self.batch_size}), "
                              f"got {self.m}")
        self.eligible = torch.nonzero(self.counts >= self.m).flatten()
        wanted = self.batch_size // self.m
        if self.eligible.numel() < wanted:
            raise ConfigError(
                f"--sampler m-per-class with --batch-size {self.batch_size} and --m-per-class {self.m} needs "
                f"{wanted} classes with at least {self.m} training images each; the training set has "
                f"{self.eligible.numel()}: raise --m-per-class or lower --batch-size")

    def global_batches(self, epoch: int) -> Tensor:
        """``(steps, batch_size)`` training-set indices of every global batch of ``epoch``."""
        if self.kind == "random":
            order = _random_order(self.n, epoch, self.seed, shuffle=True)
            return order[: self.steps * self.batch_size].view(self.steps, self.batch_size)
        gen = _generator(self.seed, epoch)
        if self.kind == "class-balanced":
            return self._class_balanced(gen)
        return self._m_per_class(gen)

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1) -> list[Tensor]:
        """This rank's slice of every global batch of ``epoch``."""
        return rank_slices(self.global_batches(epoch), rank, world_size)

    def _class_balanced(self, gen: torch.Generator) -> Tensor:
        present = torch.nonzero(self.counts).flatten()
        total = self.steps * self.batch_size
        classes = present[torch.randint(len(present), (total,), generator=gen)]
        within = (torch.rand(total, generator=gen, dtype=torch.float64) * self.counts[classes]).long()
        within = torch.minimum(within, self.counts[classes] - 1)
        return self.order[self.starts[classes] + within].view(self.steps, self.batch_size)

    def _m_per_class(self, gen: torch.Generator) -> Tensor:
        groups = self.batch_size // self.m
        # (steps, groups) distinct classes per batch, uniform among the eligible ones
        picks = torch.rand(self.steps, len(self.eligible), generator=gen).argsort(dim=1)[:, :groups]
        chosen = self.eligible[picks].flatten()
        out = torch.empty(chosen.numel(), self.m, dtype=torch.int64)
        slots = torch.argsort(chosen, stable=True)  # every class's slots, in batch order
        uses = torch.bincount(chosen, minlength=len(self.counts))
        start = 0
        for c in self.eligible.tolist():
            used = int(uses[c])
            if used:
                out[slots[start:start + used]] = self._class_stream(c, used, gen)
            start += used
        return out.view(self.steps, self.batch_size)

    def _class_stream(self, c: int, groups: int, gen: torch.Generator) -> Tensor:
        """``(groups, M)`` distinct images of class ``c`` per group: reshuffled passes over the class,
        each cut into ``n_c // M`` groups, so every image is used before any repeats."""
        n_c, start = int(self.counts[c]), int(self.starts[c])
        members = self.order[start:start + n_c]
        per_pass = n_c // self.m
        passes = math.ceil(groups / per_pass)
        stream = torch.cat([members[torch.randperm(n_c, generator=gen)[: per_pass * self.m]]
                            for _ in range(passes)])
        return stream.view(-1, self.m)[:groups]


def positive_counts(batch_labels: Tensor, num_classes: int, views: int) -> tuple[Tensor, Tensor]:
    """Per epoch, what the batches gave each anchor: (mean positives per anchor, fraction of anchors
    with no positive besides their own views), as 0-d tensors on the labels' device (no host sync).

    An anchor's positives are the other images of its class in the global batch, ``views`` each, plus
    its own ``views - 1`` other views.

    Args:
        batch_labels: ``(steps, batch_size)`` labels of the global batches.
    """
    steps = batch_labels.shape[0]
    counts = torch.zeros(steps, num_classes, dtype=torch.int64, device=batch_labels.device)
    counts.scatter_add_(1, batch_labels, torch.ones_like(batch_labels))
    others = counts.gather(1, batch_labels) - 1  # (steps, batch) same-class images besides itself
    positives = (others * views + views - 1).double()
    return positives.mean(), (others == 0).double().mean()
