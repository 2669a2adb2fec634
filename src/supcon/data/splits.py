"""The split rules every command shares: train/test for a config, the label budget, normalisation.

:func:`load_splits` is how training gets its data and :func:`load_test_split` how evaluation and reports
get the same test split back from a run's config (same spec, image size, seed and test fraction, never a
download). The stratified held-out split itself lives in :mod:`supcon.data.stratified`, below the readers
that use it; :func:`describe_split_rules` states all of the rules in words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from supcon.config import Config
from supcon.data.base import _CHUNK_ELEMENTS, DatasetError, ImageDataset, _check_tensor, _is_number
from supcon.data.footprint import check_fits_in_memory
from supcon.data.registry import load_dataset


@dataclass
class DataSplits:
    """Train and test splits as uint8 tensors, plus the training split's normalisation.

    Attributes:
        train: the training split (after the label fraction, if any).
        test: the test split.
        mean: per-channel mean of ``train.images`` scaled to ``[0, 1]``.
        std: per-channel population standard deviation of the same.
    """

    train: ImageDataset
    test: ImageDataset
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    @property
    def channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> int:
        return self.train.image_size


#: The name the training engine uses for :class:`DataSplits`.
Data = DataSplits


def load_splits(cfg: Config) -> DataSplits:
    """Both splits of ``cfg.dataset``; the normalisation statistics come from the training split only.

    The train split may download (``cfg.download``); ``cfg.label_fraction`` below 1 keeps that share of
    every training class (:func:`label_fraction_subset`, seeded by ``cfg.seed``), then
    ``cfg.imbalance_ratio`` makes it long-tailed (:func:`long_tailed_subset`). The test split is
    :func:`load_test_split`'s. Both splits and a training batch of float views
    (``min(batch_size, N) x views``) must fit in the machine's memory together.

    Raises:
        DatasetError: the dataset cannot be loaded as configured, or would not fit in memory with a batch.
    """
    train = load_dataset(cfg.dataset, "train", image_size=cfg.image_size, download=cfg.download,
                         seed=cfg.seed, test_fraction=cfg.test_fraction, skip_bad_images=cfg.skip_bad_images)
    test = load_test_split(cfg)
    check_fits_in_memory(len(train) + len(test), train.channels, train.image_size, repr(cfg.dataset),
                         batch_views=min(cfg.batch_size, len(train)) * cfg.views)
    if cfg.label_fraction is not None and cfg.label_fraction < 1:
        train = label_fraction_subset(train, cfg.label_fraction, seed=cfg.seed)
    if cfg.imbalance_ratio is not None:
        train = long_tailed_subset(train, cfg.imbalance_ratio, seed=cfg.seed)
    mean, std = normalization_stats(train.images)
    return DataSplits(train=train, test=test, mean=mean, std=std)


def load_test_split(cfg: Config) -> ImageDataset:
    """The test split of ``cfg.dataset`` exactly as training saw it; never downloads.

    Raises:
        DatasetError: the dataset cannot be loaded as configured.
    """
    return load_dataset(cfg.dataset, "test", image_size=cfg.image_size, download=False,
                        seed=cfg.seed, test_fraction=cfg.test_fraction, skip_bad_images=cfg.skip_bad_images)


def describe_split_rules() -> str:
    """A short human-readable description of how each dataset kind is split into train and test.

    Returns:
        Several lines of plain text, suitable for a README or ``--help``.
    """
    return (
        "Train/test splits:\n"
        "  digits       stratified split of the 1,797 scikit-learn digits (test_fraction, seed).\n"
        "  idx:DIR      train-* + t10k-* IDX pairs are the train and test splits; a directory with a\n"
        "               single images/labels pair (e.g. only the MNIST test set) is split stratified.\n"
        "  cifar10:DIR  the official data_batch_1..5 / test_batch; cifar100:DIR the official train / test.\n"
        "  folder:DIR   DIR/train + DIR/test (or DIR/val) are the splits; otherwise DIR/<class>/ images\n"
        "               are split stratified.\n"
        "  npz:FILE     images/labels + images_test/labels_test if present; otherwise stratified split.\n"
        "A stratified split keeps test_fraction of every class for test (scikit-learn train_test_split,\n"
        "random_state=seed); the same seed always gives the same, disjoint splits."
    )


def normalization_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images scaled to ``[0, 1]``.

    Compute them on the training split. Sums are accumulated exactly in int64, chunk by chunk, so no
    float copy of the whole array is made; the standard deviation is the population one (``ddof=0``).

    Args:
        images: ``(N, C, H, W)`` uint8, ``N >= 1``.

    Returns:
        ``(mean, std)``, each a tuple of ``C`` floats.

    Raises:
        DatasetError: not a non-empty 4-D uint8 tensor.
    """
    _check_tensor(images, "images", torch.uint8, 4, "(N, C, H, W)")
    n, c, h, w = images.shape
    if n * h * w == 0:
        raise DatasetError(f"images must be non-empty, got shape {tuple(images.shape)}")
    total = torch.zeros(c, dtype=torch.int64)
    total_sq = torch.zeros(c, dtype=torch.int64)
    chunk = max(1, _CHUNK_ELEMENTS // (c * h * w))
    for start in range(0, n, chunk):
        block = images[start : start + chunk].to(torch.int64)
        total += block.sum(dim=(0, 2, 3))
        total_sq += (block * block).sum(dim=(0, 2, 3))
    count = n * h * w
    means, stds = [], []
    for s1, s2 in zip(total.tolist(), total_sq.tolist()):
        # Exact integer arithmetic: var * (255 * count)^2 = count * s2 - s1^2.
        means.append(s1 / (count * 255))
        stds.append(math.sqrt(count * s2 - s1 * s1) / (count * 255))
    return tuple(means), tuple(stds)


def label_fraction_subset(dataset: ImageDataset, fraction: float, seed: int = 0) -> ImageDataset:
    """Class-balanced subset keeping ``fraction`` of every class (the semi-supervised label budget).

    Class ``k`` with ``n_k > 0`` samples keeps ``max(1, floor(fraction * n_k + 0.5))`` of them, drawn
    without replacement by a ``torch.Generator`` seeded with ``seed``; kept samples stay in their
    original order. ``fraction == 1`` keeps everything.

    Args:
        dataset: the split to subsample, ``images (N, C, H, W)``, ``labels (N,)``.
        fraction: share of each class to keep, in ``(0, 1]``.
        seed: seed of the draw; the same seed gives the same subset.

    Returns:
        A new :class:`ImageDataset` with ``images (M, C, H, W)``, ``labels (M,)``, same classes and name.

    Raises:
        DatasetError: ``fraction`` outside ``(0, 1]``.
    """
    if not _is_number(fraction) or not 0 < fraction <= 1:
        raise DatasetError(f"fraction must be a number in (0, 1], got {fraction!r}")
    generator = torch.Generator().manual_seed(int(seed))
    keep = []
    for label in range(dataset.num_classes):
        members = torch.nonzero(dataset.labels == label, as_tuple=False).flatten()
        if members.numel() == 0:
            continue
        count = max(1, int(math.floor(fraction * members.numel() + 0.5)))
        order = torch.randperm(members.numel(), generator=generator)
        keep.append(members[order[:count]])
    index = torch.sort(torch.cat(keep)).values if keep else torch.zeros(0, dtype=torch.int64)
    return ImageDataset(dataset.images[index], dataset.labels[index], list(dataset.classes), dataset.name)


def long_tailed_counts(class_counts: list[int], ratio: float) -> list[int]:
    """Images kept per class under the exponential profile of CIFAR-10-LT (Cui et al. 2019; Cao et
    al. 2019): ``n_c = floor(n_max * ratio^(-c / (C - 1)))`` for class ``c`` of ``C``, capped by the
    class's own count and at least 1 for a class that has images; ``n_max`` is the largest class."""
    num = len(class_counts)
    n_max = max(class_counts, default=0)
    kept = []
    for c, count in enumerate(class_counts):
        target = n_max * ratio ** (-c / (num - 1)) if num > 1 else n_max
        kept.append(min(count, max(1, int(math.floor(target + 1e-9)))) if count else 0)
    return kept


def long_tailed_subset(dataset: ImageDataset, ratio: float, seed: int = 0) -> ImageDataset:
    """A long-tailed view of a split: class ``c`` keeps :func:`long_tailed_counts` images, drawn
    without replacement by a ``torch.Generator`` seeded with ``seed`` (kept images stay in order).

    Raises:
        DatasetError: ``ratio`` below 1.
    """
    if not _is_number(ratio) or not ratio >= 1:
        raise DatasetError(f"imbalance ratio must be a number >= 1, got {ratio!r}")
    members = [torch.nonzero(dataset.labels == label, as_tuple=False).flatten()
               for label in range(dataset.num_classes)]
    counts = long_tailed_counts([m.numel() for m in members], float(ratio))
    generator = torch.Generator().manual_seed(int(seed) + 1)
    keep = [m[torch.randperm(m.numel(), generator=generator)[:k]] for m, k in zip(members, counts) if k]
    index = torch.sort(torch.cat(keep)).values if keep else torch.zeros(0, dtype=torch.int64)
    return ImageDataset(dataset.images[index], dataset.labels[index], list(dataset.classes), dataset.name)
