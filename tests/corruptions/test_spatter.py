"""Tests for supcon.corruptions.spatter beyond the shared contract: the water and mud severity trends."""

from __future__ import annotations

import pytest
from corruption_cases import LAYOUTS, mean_abs_diffs


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_spatter_severity_trend(layout):
    # severities 1-3 splash water, 4-5 mud (a different mechanism); each branch grows
    d = mean_abs_diffs("spatter", layout)
    assert d[0] <= d[1] <= d[2], d
    assert d[3] <= d[4], d
    assert d[4] > d[0], d
