"""The one Markdown table writer: every table the CLI prints and the report writes goes through it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from supcon.eval.gradients import gradients_rows
from supcon.eval.robustness import robustness_rows

__all__ = ["format_cell", "markdown_table", "robustness_table", "gradients_table"]


def format_cell(value: Any) -> str:
    """A table cell as text: None -> ``-``, bools lower-case, floats with 4 significant digits,
    anything else (strings the caller formatted, ints) unchanged."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _escaped(value: Any) -> str:
    return format_cell(value).replace("|", "\\|")


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (no trailing newline); cells as :func:`format_cell`, ``|`` inside them escaped."""
    lines = ["| " + " | ".join(_escaped(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_escaped(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def robustness_table(summary: Mapping[str, Any]) -> str:
    """Markdown table of a robustness summary: one row per model."""
    return markdown_table(*robustness_rows(summary))


def gradients_table(analysis: Mapping[str, Any]) -> str:
    """Markdown table of :func:`supcon.eval.gradients.analyze_gradients`' summaries."""
    return markdown_table(*gradients_rows(analysis))
