"""Datasets as in-memory uint8 tensors: readers for digits, IDX (MNIST), CIFAR, image folders and npz.

:func:`load_dataset` (in :mod:`supcon.data.registry`) loads one split of a spec; :mod:`supcon.data.splits`
holds the rules every command shares (train/test for a config, label fraction, normalisation).
"""

from supcon.data.base import DatasetError, ImageDataset
from supcon.data.registry import DATASET_KINDS, load_dataset
from supcon.data.splits import (
    Data,
    DataSplits,
    describe_split_rules,
    label_fraction_subset,
    load_splits,
    load_test_split,
    normalization_stats,
)

__all__ = [
    "DATASET_KINDS",
    "Data",
    "DataSplits",
    "DatasetError",
    "ImageDataset",
    "describe_split_rules",
    "label_fraction_subset",
    "load_dataset",
    "load_splits",
    "load_test_split",
    "normalization_stats",
]
