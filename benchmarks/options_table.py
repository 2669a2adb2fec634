"""Print one Markdown table of finished run folders (benchmarks/training_options.sh uses it).

Usage::

    python benchmarks/options_table.py "TITLE" "LABEL=RUN_DIR" ["LABEL=RUN_DIR" ...]

``RUN_DIR`` is one method's folder of a ``supcon run`` output (``.../supcon``, ``.../ce``,
``.../supcon+ce``). Top-1 and balanced accuracy come from its linear probe (``RUN_DIR/linear``) when it
has one, else from the run itself (CE); kNN top-1, positives per anchor and the share of anchors without
a positive come from the run itself; train time adds the probe's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _metrics(folder: Path) -> dict:
    path = folder / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: did the run finish?")
    return json.loads(path.read_text())


def _fmt(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def row(label: str, folder: Path) -> str:
    own = _metrics(folder)
    probe = _metrics(folder / "linear") if (folder / "linear").is_dir() else None
    scored = probe or own
    seconds = own.get("total_seconds", 0.0) + (probe.get("total_seconds", 0.0) if probe else 0.0)
    without = own.get("anchors_without_positive")
    cells = [
        label,
        _fmt(scored.get("test_acc")),
        _fmt(scored.get("balanced_acc")),
        _fmt(own.get("knn_acc")),
        _fmt(own.get("positives_per_anchor")),
        "-" if without is None else f"{100 * without:.1f}",
        f"{seconds:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    title, pairs = argv[0], argv[1:]
    print(f"\n{title}\n")
    print("| run | top-1 (%) | balanced acc (%) | kNN top-1 (%) | positives per anchor "
          "| anchors without positive (%) | train time (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pair in pairs:
        label, sep, folder = pair.rpartition("=")
        if not sep:
            raise SystemExit(f"expected LABEL=RUN_DIR, got {pair!r}")
        print(row(label, Path(folder)))


if __name__ == "__main__":
    main(sys.argv[1:])
