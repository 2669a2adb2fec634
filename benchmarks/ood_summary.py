"""One compact Markdown table of `supcon ood` folders: AUROC / FPR@95 per score, one row per run.

Usage::

    python benchmarks/ood_summary.py runs/ood/*/*        # the folders benchmarks/ood.sh writes

Each cell is ``AUROC / FPR at 95 % TPR`` in percent (in-distribution = positive; higher AUROC and lower
FPR are better); ``-`` where a score does not apply (MSP and energy need a classifier).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCORES = ("cosine", "knn", "mahalanobis", "msp", "energy")


def _cell(metrics: dict, score: str) -> str:
    values = metrics.get(score)
    if values is None:
        return "-"
    return f"{100 * values['auroc']:.1f} / {100 * values['fpr95']:.1f}"


def main(folders: list[str]) -> None:
    if not folders:
        raise SystemExit(__doc__)
    print("| in -> OOD | encoder | " + " | ".join(SCORES) + " |")
    print("|---|---|" + "---:|" * len(SCORES))
    for folder in folders:
        path = Path(folder) / "ood.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing")
        result = json.loads(path.read_text())
        pair = f"{Path(folder).parent.name} ({result['in_count']} / {result['ood_count']})"
        cells = [_cell(result["metrics"], score) for score in SCORES]
        print(f"| {pair} | {result['method']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
