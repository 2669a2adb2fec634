"""Tests for supcon.data.digits: scikit-learn's 8x8 digits, split stratified."""

from __future__ import annotations

import numpy as np
import torch
from dataset_files import sorted_rows

from supcon.data import load_dataset


def test_digits_shapes_split_partition_and_determinism():
    from sklearn.datasets import load_digits

    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.num_classes == 10 and train.classes == [str(k) for k in range(10)]
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # Train + test is exactly the full dataset (as a multiset of images scaled 0..16 -> 0..255).
    full = load_digits()
    expected = torch.from_numpy(np.rint(full.images * 255 / 16).astype(np.uint8))
    assert sorted_rows(torch.cat([train.images, test.images])) == sorted_rows(expected)
    # Stratified: every class has ~20% of its samples in test.
    full_counts = np.bincount(full.target, minlength=10)
    test_counts = test.labels.bincount(minlength=10).numpy()
    assert np.all(np.abs(test_counts - 0.2 * full_counts) <= 1)
    # Same seed, same split; another seed, another split.
    again = load_dataset("digits", "test")
    assert torch.equal(again.images, test.images) and torch.equal(again.labels, test.labels)
    other = load_dataset("digits", "test", seed=1)
    assert not torch.equal(other.images, test.images)


def test_digits_image_size_resizes():
    test = load_dataset("digits", "test", image_size=16)
    assert test.images.shape == (360, 1, 16, 16) and test.images.dtype == torch.uint8
