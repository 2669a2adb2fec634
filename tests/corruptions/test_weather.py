"""Tests for supcon.corruptions.weather beyond the shared contract: the frost severity trend."""

from __future__ import annotations

import pytest
from corruption_cases import LAYOUTS, mean_abs_diffs


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_frost_severity_trend(layout):
    # published (image, frost) weights (1,.2) (1,.3) (.9,.4) (.85,.4) (.75,.45): from severity 3 on the
    # image is dimmed more than frost is added, so only the overall trend is monotone
    d = mean_abs_diffs("frost", layout)
    assert d[4] > d[0], d
