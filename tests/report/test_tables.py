"""The one Markdown table writer (supcon.report.tables)."""

from __future__ import annotations

from supcon.report.tables import format_cell, gradients_table, markdown_table, robustness_table


def test_cells_none_bool_float_and_strings():
    assert [format_cell(v) for v in (None, True, False, 0.123456, 91.23456, 3, "0.50", "x")] == [
        "-", "true", "false", "0.1235", "91.23", "3", "0.50", "x"]


def test_markdown_table_layout_and_escaped_pipes():
    text = markdown_table(["a", "b|c"], [[1, None], ["x|y", 2.5]])
    assert text.splitlines() == ["| a | b\\|c |", "|---|---|", "| 1 | - |", "| x\\|y | 2.5 |"]
    assert markdown_table(["a"], []) == "| a |\n|---|"


def test_pre_formatted_cells_give_the_sweep_spread_as_the_cli_printed_it():
    s = {"runs": 2, "mean": 88.6, "std": 2.42, "min": 86.18, "median": 88.6, "max": 91.02}
    row = ["supcon", s["runs"], *(f"{s[k]:.2f}" for k in ("mean", "std", "min", "median", "max"))]
    old = ("| method | runs | mean (%) | std | min | median | max |\n|---|---|---|---|---|---|---|\n"
           f"| supcon | {s['runs']} | {s['mean']:.2f} | {s['std']:.2f} | {s['min']:.2f} | "
           f"{s['median']:.2f} | {s['max']:.2f} |")
    assert markdown_table(["method", "runs", "mean (%)", "std", "min", "median", "max"], [row]) == old


def test_robustness_and_gradients_tables():
    summary = {"mce": 80.0, "relative_mce": None, "models": {
        "model": {"method": "supcon", "clean_accuracy": 95.0, "mean_corrupted_accuracy": 70.0},
        "baseline": {"method": "ce", "clean_accuracy": 90.0, "mean_corrupted_accuracy": 60.0}}}
    lines = robustness_table(summary).splitlines()
    assert lines[2] == "| model (supcon) | 95 | 70 | 80 | - |"
    assert lines[3] == "| baseline (ce) | 90 | 60 | 100 | - |"
    summary_of = {"pairs": 4, "mean_similarity": 0.5, "mean_projected": 1.0, "hard_half_mean_projected": 1.5,
                  "easy_half_mean_projected": 0.5, "hard_half_share_projected": 0.75,
                  "spearman_similarity_vs_projected": -1.0}
    analysis = {v: {"summary": {"positives": summary_of, "negatives": {"pairs": 0}}} for v in ("out", "in")}
    lines = gradients_table(analysis).splitlines()
    assert len(lines) == 4 and lines[2].startswith("| L_out | positives | 4 | 0.5 |")
