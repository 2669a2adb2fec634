"""Tests for supcon.data.stratified: the held-out split of readers without a test split of their own."""

from __future__ import annotations

import numpy as np
import pytest

from supcon.data import DatasetError
from supcon.data.stratified import _stratified_indices


def test_stratified_split_is_a_sorted_disjoint_partition_per_class():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 5)
    train = _stratified_indices(labels, "train", 0, 0.2, "toy")
    test = _stratified_indices(labels, "test", 0, 0.2, "toy")
    assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(20))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert np.bincount(labels[test]).tolist() == [2, 1, 1]
    assert np.array_equal(_stratified_indices(labels, "test", 0, 0.2, "toy"), test)


def test_stratified_split_errors_name_the_source():
    with pytest.raises(DatasetError, match="toy holds no samples"):
        _stratified_indices(np.zeros(0, dtype=np.int64), "train", 0, 0.2, "toy")
    with pytest.raises(DatasetError, match=r"cannot make a stratified split of toy with test_fraction=0.2"):
        _stratified_indices(np.array([0, 0, 0, 1]), "train", 0, 0.2, "toy")
