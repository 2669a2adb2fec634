"""Batch samplers: random (today's epoch_batches), class-balanced, m-per-class; ranks; statistics."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from supcon.config import ConfigError
from supcon.train.sampler import EpochSampler, epoch_batches, positive_counts, rank_slices


def _labels(per_class: list[int], seed: int = 0) -> torch.Tensor:
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(per_class)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def _old_epoch_batches(n, batch_size, epoch, seed, rank=0, world_size=1):
    """The loop's epoch_batches before the samplers (drop_last, shuffle), kept as the reference."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    order = order[: n - n % batch_size]
    per_rank = batch_size // world_size
    return [order[s:s + batch_size][rank * per_rank:(rank + 1) * per_rank] for s in range(0, len(order), batch_size)]


def test_random_sampler_is_the_old_permutation_bit_for_bit():
    labels = _labels([13, 7, 20, 10])
    for world in (1, 2, 5):
        for epoch in range(3):
            sampler = EpochSampler(labels, 10, "random", seed=3)
            for rank in range(world):
                old = _old_epoch_batches(50, 10, epoch, 3, rank, world)
                new = sampler.batches(epoch, rank, world)
                assert len(old) == len(new) == 5
                assert all(torch.equal(a, b) for a, b in zip(old, new))
                assert all(torch.equal(a, b) for a, b in zip(old, epoch_batches(50, 10, epoch, 3, rank, world)))


def _check_m_per_class(batch: torch.Tensor, labels: torch.Tensor, m: int) -> None:
    assert batch.unique().numel() == batch.numel()  # no image twice
    classes, counts = labels[batch].unique(return_counts=True)
    assert classes.numel() == batch.numel() // m and bool((counts == m).all())


@pytest.mark.parametrize("m,batch", [(2, 8), (4, 16), (5, 10)])
def test_every_m_per_class_batch_has_b_over_m_classes_of_m_images(m, batch):
    labels = _labels([30, 5, 12, 9, 40, 3, 17])  # class 5 has fewer than 4 or 5 images
    sampler = EpochSampler(labels, batch, "m-per-class", m_per_class=m, seed=1)
    for epoch in range(20):
        batches = sampler.global_batches(epoch)
        assert batches.shape == (labels.numel() // batch, batch)
        for row in batches:
            _check_m_per_class(row, labels, m)
            assert bool((labels[row] != 5).all()) or m <= 3


def test_m_per_class_uses_each_class_images_before_repeating_them():
    labels = _labels([8, 8, 8, 8])
    batches = EpochSampler(labels, 8, "m-per-class", m_per_class=4, seed=0).global_batches(0)
    for c in range(4):
        used = batches.flatten()[labels[batches.flatten()] == c]
        assert used.numel() <= 8 or used[:8].unique().numel() == 8


def test_class_balanced_draws_classes_uniformly_and_images_within_a_class():
    labels = _labels([400, 40, 10, 4])
    sampler = EpochSampler(labels, 32, "class-balanced", seed=0)
    drawn = torch.cat([sampler.global_batches(e).flatten() for e in range(20)])
    share = torch.bincount(labels[drawn], minlength=4).double() / drawn.numel()
    assert torch.allclose(share, torch.full((4,), 0.25, dtype=torch.float64), atol=0.02)
    rare = drawn[labels[drawn] == 3]
    assert set(rare.unique().tolist()) == set(torch.nonzero(labels == 3).flatten().tolist())
    assert sampler.steps == labels.numel() // 32


@pytest.mark.parametrize("kind", ["random", "class-balanced", "m-per-class"])
def test_batches_depend_on_seed_and_epoch_only(kind):
    labels = _labels([20, 20, 20, 20])
    a = EpochSampler(labels, 8, kind, m_per_class=4, seed=5)
    b = EpochSampler(labels.clone(), 8, kind, m_per_class=4, seed=5)
    b.global_batches(3)  # drawing other epochs first changes nothing
    assert torch.equal(a.global_batches(1), b.global_batches(1))
    assert not torch.equal(a.global_batches(1), a.global_batches(2))
    assert not torch.equal(a.global_batches(1), EpochSampler(labels, 8, kind, m_per_class=4, seed=6).global_batches(1))


def test_m_per_class_errors_name_the_flags():
    labels = _labels([10, 10, 3])
    with pytest.raises(ConfigError, match="needs 3 classes with at least 4.*--m-per-class.*--batch-size"):
        EpochSampler(labels, 12, "m-per-class", m_per_class=4)
    with pytest.raises(ConfigError, match="--m-per-class"):
        EpochSampler(labels, 12, "m-per-class", m_per_class=5)
    with pytest.raises(ConfigError, match="lower --batch-size"):
        EpochSampler(labels, 64, "class-balanced")


def test_positive_statistics_count_same_class_images_times_views_plus_own_views():
    batch_labels = torch.tensor([[0, 0, 1, 2], [3, 3, 3, 3]])
    mean, none = positive_counts(batch_labels, 4, views=2)
    # others: [1, 1, 0, 0] and [3, 3, 3, 3]; positives = others * 2 + 1
    assert mean.item() == pytest.approx((3 + 3 + 1 + 1 + 7 * 4) / 8)
    assert none.item() == pytest.approx(2 / 8)


def _rank_worker(rank: int, init_file: str, world: int) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        labels = _labels([30, 25, 20, 18, 12, 9])
        for kind in ("m-per-class", "class-balanced", "random"):
            sampler = EpochSampler(labels, 12, kind, m_per_class=3, seed=2)
            for epoch in range(3):
                mine = torch.stack(sampler.batches(epoch, rank, world))
                gathered = [torch.empty_like(mine) for _ in range(world)]
                dist.all_gather(gathered, mine)
                together = torch.cat(gathered, dim=1)  # rank slices side by side: the global batch
                assert torch.equal(together, sampler.global_batches(epoch)), f"{kind} rank {rank}"
                if kind == "m-per-class":
                    for row in together:
                        _check_m_per_class(row, labels, 3)
        dist.barrier()  # no rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_slices_make_the_global_batch_and_keep_the_property(tmp_path):
    mp.spawn(_rank_worker, args=(str(tmp_path / "pg_init"), 2), nprocs=2, join=True)


def test_rank_slices_refuse_a_world_size_that_does_not_divide_the_batch():
    with pytest.raises(ConfigError, match="divisible by the world size"):
        rank_slices(torch.arange(12).view(2, 6), 0, 4)
