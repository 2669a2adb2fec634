"""Tests for supcon.data.base: the ImageDataset checks and the error type."""

from __future__ import annotations

import pytest
import torch

from supcon.data import DatasetError, ImageDataset

U8 = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)


def test_image_dataset_properties_and_contiguity():
    images = torch.zeros(4, 6, 6, 3, dtype=torch.uint8).permute(0, 3, 1, 2)  # non-contiguous view
    ds = ImageDataset(images, torch.tensor([0, 1, 2, 1]), ["a", "b", "c"], "toy")
    assert ds.images.is_contiguous()
    assert (len(ds), ds.num_classes, ds.channels, ds.image_size) == (4, 3, 3, 6)


def test_image_dataset_labels_out_of_range_message():
    with pytest.raises(DatasetError, match="labels out of range: found 12, dataset has 10 classes"):
        ImageDataset(U8, torch.tensor([3, 12]), list("0123456789"), "x")
    with pytest.raises(DatasetError, match="found -1"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([-1, 0]), ["a"], "x")


@pytest.mark.parametrize(
    "images, labels, pattern",
    [
        (torch.zeros(2, 1, 4, 4), torch.tensor([0, 0]), "images must be a uint8"),
        (torch.zeros(2, 4, 4, dtype=torch.uint8), torch.tensor([0, 0]), r"uint8 .* shape \(2, 4, 4\)"),
        (U8, torch.tensor([0, 0], dtype=torch.int32), "labels must be an int64"),
        (U8, torch.tensor([0, 0, 0]), "labels has 3 entries, images has 2"),
    ],
)
def test_image_dataset_rejects_bad_tensors(images, labels, pattern):
    with pytest.raises(DatasetError, match=pattern):
        ImageDataset(images, labels, ["a"], "x")


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)
