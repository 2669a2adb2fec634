"""Tests for supcon.data.splits: train/test for a config, the label budget, the normalisation statistics."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
import torch

from dataset_files import corrupt_png, write_image_tree
from supcon.config import Config
from supcon.data import (
    Data,
    DatasetError,
    DataSplits,
    ImageDataset,
    label_fraction_subset,
    load_dataset,
    load_splits,
    load_test_split,
    normalization_stats,
)
from supcon.data import splits as splits_module
from supcon.data.splits import long_tailed_counts, long_tailed_subset


def test_normalization_stats_matches_numpy(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8, generator=generator)
    images[:, 2] //= 4
    monkeypatch.setattr(splits_module, "_CHUNK_ELEMENTS", 100)  # force several chunks
    mean, std = normalization_stats(images)
    scaled = images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 2, 3)), rtol=1e-12)
    assert len(mean) == 3 and std[2] < std[0]
    with pytest.raises(DatasetError, match="must be a uint8"):
        normalization_stats(images.float())


def test_label_fraction_subset_is_balanced_and_deterministic():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 3)
    images = torch.arange(33, dtype=torch.uint8).reshape(33, 1, 1, 1)
    dataset = ImageDataset(images, labels, ["a", "b", "c", "unused"], "toy")
    subset = label_fraction_subset(dataset, 0.1, seed=5)
    assert subset.labels.bincount(minlength=4).tolist() == [1, 2, 1, 0]
    assert subset.classes == dataset.classes
    # Images still carry their own labels, in original order.
    kept = subset.images.flatten().long()
    assert torch.equal(labels[kept], subset.labels) and torch.equal(kept, kept.sort().values)
    again = label_fraction_subset(dataset, 0.1, seed=5)
    assert torch.equal(again.images, subset.images)
    draws = {tuple(label_fraction_subset(dataset, 0.5, seed=s).images.flatten().tolist()) for s in range(4)}
    assert len(draws) > 1
    half = label_fraction_subset(dataset, 0.5, seed=0)
    assert half.labels.bincount().tolist() == [5, 10, 2]
    assert torch.equal(label_fraction_subset(dataset, 1.0).images, images)


@pytest.mark.parametrize("fraction", [0, -0.5, 1.5])
def test_label_fraction_subset_rejects_bad_fraction(fraction):
    dataset = ImageDataset(torch.zeros(2, 1, 1, 1, dtype=torch.uint8), torch.tensor([0, 1]), ["a", "b"], "x")
    with pytest.raises(DatasetError, match=r"fraction must be a number in \(0, 1\]"):
        label_fraction_subset(dataset, fraction)


# ------------------------------------------------------------------------------------- load_splits


def write_two_tone_npz(path, test_value: int = 200):
    """Train: 20 black images of class 0 and 1 white image of class 1; test: 4 flat images of test_value."""
    images = np.zeros((21, 4, 4), dtype=np.uint8)
    images[20] = 255
    labels = np.array([0] * 20 + [1])
    test_images = np.full((4, 4, 4), test_value, dtype=np.uint8)
    np.savez(path, images=images, labels=labels, images_test=test_images, labels_test=np.array([0, 1, 0, 1]))
    return path


@pytest.mark.parametrize("image_size", [None, 12])
def test_load_splits_and_load_test_split_agree_on_the_test_split(image_size):
    cfg = Config(dataset="digits", seed=3, test_fraction=0.25, image_size=image_size)
    splits = load_splits(cfg)
    test = load_test_split(cfg)
    assert isinstance(splits, DataSplits) and isinstance(test, ImageDataset)
    assert torch.equal(splits.test.images, test.images) and torch.equal(splits.test.labels, test.labels)
    # The same rule load_dataset applies: same spec, image size, seed and test fraction.
    direct = load_dataset("digits", "test", image_size=image_size, seed=3, test_fraction=0.25)
    assert torch.equal(test.images, direct.images) and torch.equal(test.labels, direct.labels)
    side = 8 if image_size is None else image_size
    assert (splits.num_classes, splits.channels, splits.image_size) == (10, 1, side)
    assert len(splits.train) + len(splits.test) == 1797


def test_load_splits_label_fraction_applies_to_train_only():
    cfg = Config(dataset="digits", seed=2, label_fraction=0.1)
    splits = load_splits(cfg)
    full_train = load_dataset("digits", "train", seed=2)
    expected = label_fraction_subset(full_train, 0.1, seed=2)
    assert torch.equal(splits.train.images, expected.images)
    assert torch.equal(splits.train.labels, expected.labels)
    assert len(splits.train) < len(full_train)
    assert len(splits.test) == 360 and torch.equal(splits.test.images, load_test_split(cfg).images)
    # label_fraction 1 (or unset) keeps the whole training split.
    whole = load_splits(Config(dataset="digits", seed=2, label_fraction=1.0))
    assert torch.equal(whole.train.images, full_train.images)


def test_load_splits_stats_come_from_the_train_split_only(tmp_path):
    path = write_two_tone_npz(tmp_path / "tones.npz")
    splits = load_splits(Config(dataset=f"npz:{path}"))
    assert splits.mean == pytest.approx((1 / 21,))
    assert (splits.mean, splits.std) == normalization_stats(splits.train.images)
    # The test images (all 200) do not move the statistics.
    other = load_splits(Config(dataset=f"npz:{write_two_tone_npz(tmp_path / 'other.npz', test_value=7)}"))
    assert other.mean == splits.mean and other.std == splits.std
    # With a label fraction the statistics are those of the kept images: 10 black, 1 white.
    half = load_splits(Config(dataset=f"npz:{path}", label_fraction=0.5))
    assert half.train.labels.bincount().tolist() == [10, 1]
    assert half.mean == pytest.approx((1 / 11,))
    assert (half.mean, half.std) == normalization_stats(half.train.images)
    assert len(half.test) == 4


def test_load_test_split_never_downloads(tmp_path, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("urlopen called by load_test_split")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    cfg = Config(dataset=f"cifar10:{tmp_path / 'cifar'}", download=True)
    with pytest.raises(DatasetError, match=r"pass download=True"):
        load_test_split(cfg)


def test_data_is_an_alias_of_data_splits():
    assert Data is DataSplits


def test_skip_bad_images_flows_from_the_config_to_both_splits(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "test"):
        write_image_tree(root / split, per_class=4)
        corrupt_png(root / split / "bee" / "broken.png")
    with pytest.raises(DatasetError, match="2 unreadable image file"):
        load_splits(Config(dataset=f"folder:{root}"))
    splits = load_splits(Config(dataset=f"folder:{root}", skip_bad_images=True))
    assert (len(splits.train), len(splits.test)) == (12, 12)
    assert len(load_test_split(Config(dataset=f"folder:{root}", skip_bad_images=True))) == 12


def test_long_tailed_counts_follow_the_exponential_profile():
    # CIFAR-10-LT with ratio 100: 5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50
    assert long_tailed_counts([5000] * 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert long_tailed_counts([500] * 10, 10) == [int(500 * 10 ** (-c / 9) + 1e-9) for c in range(10)]
    assert long_tailed_counts([100, 100, 100], 1) == [100, 100, 100]
    assert long_tailed_counts([100, 30, 100, 0], 4) == [100, 30, 39, 0]  # capped by the class; empty stays empty
    assert long_tailed_counts([7, 7], 1000) == [7, 1]  # at least one image


def test_long_tailed_subset_is_deterministic_and_keeps_labels_with_images():
    labels = torch.arange(4).repeat_interleave(40)
    images = torch.arange(160, dtype=torch.uint8).reshape(160, 1, 1, 1)
    dataset = ImageDataset(images, labels, ["a", "b", "c", "d"], "toy")
    tail = long_tailed_subset(dataset, 8, seed=3)
    assert tail.labels.bincount().tolist() == [40, 20, 10, 5]
    kept = tail.images.flatten().long()
    assert torch.equal(labels[kept], tail.labels) and torch.equal(kept, kept.sort().values)
    assert torch.equal(long_tailed_subset(dataset, 8, seed=3).images, tail.images)
    assert not torch.equal(long_tailed_subset(dataset, 8, seed=4).images, tail.images)
    with pytest.raises(DatasetError, match="imbalance ratio"):
        long_tailed_subset(dataset, 0.5)


def test_load_splits_imbalance_applies_to_train_only(tiny_npz):
    plain = load_splits(Config(dataset=f"npz:{tiny_npz}"))
    tail = load_splits(Config(dataset=f"npz:{tiny_npz}", imbalance_ratio=4.0))
    assert tail.train.labels.bincount().tolist() == long_tailed_counts([16] * 4, 4.0) == [16, 10, 6, 4]
    assert torch.equal(tail.test.labels, plain.test.labels) and torch.equal(tail.test.images, plain.test.images)
