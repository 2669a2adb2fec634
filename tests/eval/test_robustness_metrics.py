"""The mCE arithmetic of supcon.eval.robustness_metrics against hand-computed tables."""

from __future__ import annotations

import pytest

from supcon.eval.robustness_metrics import (
    corruption_errors,
    error_table,
    mce,
    relative_corruption_errors,
    relative_mce,
)

# Model f and baseline b, error rates at 3 severities.
ERRORS = {"fog": [0.1, 0.2, 0.3], "contrast": [0.5, 0.5, 0.5]}
BASE = {"fog": [0.2, 0.4, 0.6], "contrast": [0.25, 0.25, 0.5]}
CLEAN, BASE_CLEAN = 0.05, 0.1


def test_unnormalised_corruption_error_is_the_sum_over_severities():
    ce = corruption_errors(ERRORS)
    assert ce == pytest.approx({"fog": 0.6, "contrast": 1.5})


def test_corruption_error_and_mce_against_hand_computed_values():
    # fog: 0.6 / 1.2 = 50 %; contrast: 1.5 / 1.0 = 150 %; mCE = 100 %.
    assert corruption_errors(ERRORS, BASE) == pytest.approx({"fog": 50.0, "contrast": 150.0})
    assert mce(ERRORS, BASE) == pytest.approx(100.0)
    assert mce(ERRORS, BASE, names=["fog"]) == pytest.approx(50.0)
    # A model identical to its baseline scores 100 on every corruption.
    assert mce(BASE, BASE) == pytest.approx(100.0)


def test_relative_mce_against_hand_computed_values():
    # fog: (0.05 + 0.15 + 0.25) / (0.1 + 0.3 + 0.5) = 0.45 / 0.9 = 50 %
    # contrast: 3 * 0.45 / (0.15 + 0.15 + 0.4) = 1.35 / 0.7 = 192.857 %
    rel = relative_corruption_errors(ERRORS, CLEAN, BASE, BASE_CLEAN)
    assert rel["fog"] == pytest.approx(50.0)
    assert rel["contrast"] == pytest.approx(100 * 1.35 / 0.7)
    assert relative_mce(ERRORS, CLEAN, BASE, BASE_CLEAN) == pytest.approx((50.0 + 100 * 1.35 / 0.7) / 2)


def test_relative_mce_differs_from_mce_when_clean_errors_differ():
    # Same corrupted errors as the baseline but a lower clean error: mCE 100, relative mCE above 100.
    assert mce(BASE, BASE) == pytest.approx(100.0)
    assert relative_mce(BASE, 0.0, BASE, BASE_CLEAN) > 100.0


def test_error_table_converts_percent_accuracy():
    assert error_table({"fog": [90.0, 75.0]})["fog"] == pytest.approx([0.1, 0.25])
    with pytest.raises(ValueError, match="percentages"):
        error_table({"fog": [120.0]})


@pytest.mark.parametrize("errors, baseline, match", [
    ({"fog": [0.1]}, {"contrast": [0.1]}, "not in baseline_errors"),
    ({"fog": [0.1, 0.2]}, {"fog": [0.1]}, "2 severities"),
    ({"fog": [10.0]}, {"fog": [0.1]}, r"error rate in \[0, 1\]"),
    ({"fog": [0.1]}, {"fog": [0.0]}, "CE is undefined"),
    ({}, {"fog": [0.1]}, "errors is empty"),
])
def test_mce_rejects_malformed_tables(errors, baseline, match):
    with pytest.raises(ValueError, match=match):
        mce(errors, baseline)


def test_relative_mce_undefined_when_the_baseline_does_not_degrade():
    with pytest.raises(ValueError, match="relative CE is undefined"):
        relative_mce({"fog": [0.3]}, 0.1, {"fog": [0.2]}, 0.2)
