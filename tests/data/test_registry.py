"""Tests for supcon.data.registry: spec parsing, argument checks and the table of dataset kinds."""

from __future__ import annotations

import pytest

from supcon.data import DATASET_KINDS, DatasetError, describe_split_rules, load_dataset


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ("imagenet:/data", "unknown dataset kind 'imagenet'"),
        ("idx:", "needs a path"),
        ("digits:/tmp", "takes no path"),
        ("", "non-empty"),
    ],
)
def test_bad_specs(spec, pattern):
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(spec, "train")


@pytest.mark.parametrize("kind", ["idx", "folder", "npz", "cifar10", "cifar100"])
def test_missing_path_names_it(tmp_path, kind):
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match="nowhere"):
        load_dataset(f"{kind}:{missing}", "train")


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"split": "val"}, "split must be one of"),
        ({"split": "train", "image_size": 0}, "image_size must be a positive int"),
        ({"split": "train", "test_fraction": 1.0}, r"test_fraction must be a number in \(0, 1\), got 1.0"),
        ({"split": "train", "download": True}, "only supported for cifar10 and cifar100"),
        ({"split": "train", "skip_bad_images": "yes"}, "skip_bad_images must be a bool, got 'yes'"),
    ],
)
def test_bad_arguments(kwargs, pattern):
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("digits", **kwargs)


def test_kinds_and_rules_text():
    assert DATASET_KINDS == ("digits", "idx", "cifar10", "cifar100", "folder", "npz")
    rules = describe_split_rules()
    for kind in DATASET_KINDS:
        assert kind in rules
