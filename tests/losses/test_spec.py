"""Tests for supcon.losses.spec: which rows are positives (and negatives) of which anchors."""

from __future__ import annotations

import pytest
import torch

from supcon import supcon_loss
from supcon.losses.spec import PositiveSpec, _cap_table, build_positive_spec
from loss_cases import ATOL, PATHS, RTOL, make_case


def test_block_applies_the_equality_rule_and_excludes_the_anchor_itself() -> None:
    groups = torch.tensor([0, 1, 0, 1, 2])
    spec = PositiveSpec(torch.tensor([0, 1, 2]), groups[:3], groups)
    weights, in_denominator = spec.block(1, 5)  # columns 1..4
    assert weights.tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    assert in_denominator.tolist() == [[True] * 4, [False, True, True, True],
                                       [True, False, True, True]]
    rows = spec.rows(1, 3)
    assert rows.anchor_index.tolist() == [1, 2] and rows.anchor_group.tolist() == [1, 0]


def test_block_with_a_table_keeps_only_positives_and_negatives_in_the_denominator() -> None:
    table = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0]])
    negatives = torch.tensor([[False, False, True], [True, False, False]])
    contrast_group = torch.tensor([0, 1, 2, 0])
    anchors = torch.tensor([0, 1])  # rows 0 and 1, of groups 0 and 1
    spec = PositiveSpec(anchors, anchors, contrast_group, table, negatives)
    weights, in_denominator = spec.block(0, 4)
    assert weights.tolist() == [[0.0, 0.5, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0]]
    # Anchor 1 (group 1): its own row is out, group 2 is neither positive nor negative.
    assert in_denominator.tolist() == [[False, True, True, True], [True, False, False, True]]


def test_cap_table_keeps_the_own_sample_and_positives_in_index_order() -> None:
    table = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0, 1.0]])
    # Two views per batch sample (columns 0, 1), one row per extra column (2, 3, 4).
    capped = _cap_table(table, views=2, cap=3)
    # Row 0: sample 1 (2 rows) and extra row 3 fill the cap of 3; row 1: sample 0 and extra row 2.
    assert capped.tolist() == [[1.0, 1.0, 0.0, 1.0, 0.0], [1.0, 1.0, 1.0, 0.0, 0.0]]


def test_integer_labels_need_no_table_and_a_mask_or_cap_builds_one() -> None:
    labels = torch.tensor([3, 5, 3])
    layout = dict(batch=3, views=2, extra=0, num_anchors=6, positives_cap=None,
                  dtype=torch.float64, device=torch.device("cpu"))
    by_label = build_positive_spec(labels, None, None, None, **layout)
    assert by_label.table is None
    assert by_label.contrast_group.tolist() == [3, 5, 3, 3, 5, 3]
    simclr = build_positive_spec(None, None, None, None, **layout)
    assert simclr.table is None and simclr.contrast_group.tolist() == [0, 1, 2, 0, 1, 2]
    mask = labels[:, None] == labels[None, :]
    by_mask = build_positive_spec(None, mask, None, None, **layout)
    assert by_mask.table.dtype == torch.float64 and by_mask.negatives is None
    weights_by_label, _ = by_label.block(0, 6)
    weights_by_mask, _ = by_mask.block(0, 6)
    assert torch.equal(weights_by_mask, weights_by_label.to(torch.float64))
    capped = build_positive_spec(labels, None, None, None, **{**layout, "positives_cap": 0})
    assert capped.negatives is not None


@pytest.mark.parametrize("chunk_size", PATHS)
def test_a_cap_above_every_positive_count_changes_nothing(chunk_size) -> None:
    case = make_case("extra_cap")
    inputs = case.inputs()
    uncapped = supcon_loss(case.features, **inputs, chunk_size=chunk_size)
    capped = supcon_loss(case.features, **inputs, positives_cap=100, chunk_size=chunk_size)
    torch.testing.assert_close(capped, uncapped, rtol=RTOL, atol=ATOL)
    tight = supcon_loss(case.features, **inputs, positives_cap=2, chunk_size=chunk_size)
    assert not torch.allclose(tight, uncapped)
