"""Corruption error, mCE and relative mCE (Hendrycks & Dietterich, ICLR 2019): pure functions on tables.

A table holds one model's results, ``{corruption: [value per severity]}``: accuracies in percent
(:func:`error_table` turns them into error rates) or error rates in ``[0, 1]`` (everything else).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Table", "error_table", "corruption_errors", "mce", "relative_corruption_errors", "relative_mce"]

#: A table of one model's results: corruption name -> one value per severity.
Table = Mapping[str, Sequence[float]]


def error_table(accuracy: Table) -> dict[str, list[float]]:
    """Accuracies in percent -> error rates in [0, 1]: ``E = 1 - acc / 100``."""
    table = {}
    for name, values in accuracy.items():
        for v in values:
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v <= 100):
                raise ValueError(f"accuracy of {name!r} must be percentages in [0, 100], got {list(values)}")
        table[name] = [1.0 - float(v) / 100.0 for v in values]
    return table


def _check_rate(value: Any, what: str) -> float:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and 0 <= value <= 1):
        raise ValueError(f"{what} must be an error rate in [0, 1], got {value!r}")
    return float(value)


def _check_tables(errors: Table, baseline: Table | None, names: Sequence[str] | None) -> list[str]:
    """Validates the tables and returns the corruptions to use (``names`` or all of ``errors``)."""
    if not errors:
        raise ValueError("errors is empty: expected {corruption: [error rate per severity]}")
    chosen = list(errors) if names is None else list(names)
    if not chosen:
        raise ValueError("names is empty: no corruption to average over")
    for name in chosen:
        if name not in errors:
            raise ValueError(f"corruption {name!r} is not in errors (has {sorted(errors)})")
        row = list(errors[name])
        if not row:
            raise ValueError(f"errors[{name!r}] is empty: expected one error rate per severity")
        for v in row:
            _check_rate(v, f"errors[{name!r}]")
        if baseline is not None:
            if name not in baseline:
                raise ValueError(f"corruption {name!r} is in errors but not in baseline_errors")
            base_row = list(baseline[name])
            if len(base_row) != len(row):
                raise ValueError(f"errors[{name!r}] has {len(row)} severities, baseline_errors[{name!r}] "
                                 f"has {len(base_row)}")
            for v in base_row:
                _check_rate(v, f"baseline_errors[{name!r}]")
    return chosen


def corruption_errors(errors: Table, baseline_errors: Table | None = None, *,
                      names: Sequence[str] | None = None) -> dict[str, float]:
    """Corruption error per corruption (Hendrycks & Dietterich 2019).

    Without a baseline, the unnormalised ``CE_c = sum_s E_{s,c}`` (a sum of error rates). With one,
    ``CE_c^f = 100 * sum_s E^f_{s,c} / sum_s E^base_{s,c}`` in percent (the baseline scores 100).

    Args:
        errors: ``{corruption: [error rate in [0, 1] per severity]}`` of the model.
        baseline_errors: the same table for the baseline, same severities.
        names: corruptions to report (default: all of ``errors``).

    Raises:
        ValueError: malformed tables, or a baseline with zero error summed over severities.
    """
    chosen = _check_tables(errors, baseline_errors, names)
    out = {}
    for name in chosen:
        total = float(sum(errors[name]))
        if baseline_errors is None:
            out[name] = total
            continue
        base = float(sum(baseline_errors[name]))
        if base <= 0:
            raise ValueError(f"baseline error summed over severities is 0 for {name!r}: CE is undefined")
        out[name] = 100.0 * total / base
    return out


def mce(errors: Table, baseline_errors: Table, *, names: Sequence[str] | None = None) -> float:
    """Mean corruption error (percent): the mean over corruptions of :func:`corruption_errors`.

    Hendrycks & Dietterich average over the 15 benchmark corruptions; pass ``names`` to choose
    (default: every corruption of ``errors``).
    """
    ce = corruption_errors(errors, baseline_errors, names=names)
    return sum(ce.values()) / len(ce)


def relative_corruption_errors(errors: Table, clean_error: float, baseline_errors: Table,
                               baseline_clean_error: float, *,
                               names: Sequence[str] | None = None) -> dict[str, float]:
    """Relative corruption error per corruption (percent): degradation w.r.t. the clean error.

    ``100 * sum_s (E^f_{s,c} - E^f_clean) / sum_s (E^base_{s,c} - E^base_clean)``.

    Raises:
        ValueError: malformed tables, or a baseline whose summed degradation is 0 for a corruption
            (relative CE undefined).
    """
    chosen = _check_tables(errors, baseline_errors, names)
    clean = _check_rate(clean_error, "clean_error")
    base_clean = _check_rate(baseline_clean_error, "baseline_clean_error")
    out = {}
    for name in chosen:
        num = sum(float(e) - clean for e in errors[name])
        den = sum(float(e) - base_clean for e in baseline_errors[name])
        if den == 0:
            raise ValueError(f"the baseline's error on {name!r} does not change from its clean error: "
                             "relative CE is undefined")
        out[name] = 100.0 * num / den
    return out


def relative_mce(errors: Table, clean_error: float, baseline_errors: Table, baseline_clean_error: float,
                 *, names: Sequence[str] | None = None) -> float:
    """Relative mCE (percent): the mean over corruptions of :func:`relative_corruption_errors`."""
    rel = relative_corruption_errors(errors, clean_error, baseline_errors, baseline_clean_error, names=names)
    return sum(rel.values()) / len(rel)
