"""Smoke test of benchmarks/loss.py: the quick mode runs on a CPU and prints its table.

Timings are never asserted: only that the script runs every CPU path and prints the markdown
table. The research-style baseline is checked in-process against :func:`supcon.supcon_loss`, so
the benchmark compares the same computation.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "loss.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("loss_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_prints_table() -> None:
    # N = 512, one timed pass per path, three short subprocesses: a few seconds, mostly imports.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = "| N | path | time ms | peak MiB | time vs allmatrices | memory vs allmatrices |"
    assert header in lines, proc.stdout
    rows = {line.split("|")[2].strip(): line for line in lines if line.startswith("| 512 |")}
    assert set(rows) == {"allmatrices", "dense", "tiled"}, proc.stdout
    for row in rows.values():
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        assert float(cells[2]) > 0 and float(cells[3]) >= 0, row  # measured, not failed
    assert rows["allmatrices"].endswith("| 1.000x | 1.000x |")


def test_allmatrices_baseline_matches_supcon_loss() -> None:
    from supcon.losses import supcon_loss

    bench = _load_benchmark()
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(12, 2, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (12,), generator=gen)
    loss = bench.allmatrices_supcon_loss(features, labels, temperature=0.1)
    (grad,) = torch.autograd.grad(loss, features)
    expected = supcon_loss(features, labels, temperature=0.1, chunk_size=None)
    (expected_grad,) = torch.autograd.grad(expected, features)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
