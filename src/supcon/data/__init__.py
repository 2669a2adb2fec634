"""Datasets as in-memory uint8 tensors: readers for digits, IDX (MNIST), CIFAR, image folders and npz."""

from supcon.data.datasets import (
    DATASET_KINDS,
    DatasetError,
    ImageDataset,
    describe_split_rules,
    label_fraction_subset,
    load_dataset,
    normalization_stats,
)

__all__ = [
    "DATASET_KINDS",
    "DatasetError",
    "ImageDataset",
    "describe_split_rules",
    "label_fraction_subset",
    "load_dataset",
    "normalization_stats",
]
