"""Smoke test of benchmarks/loss.py: the quick mode runs on a CPU and prints its table.

Timings are never asserted: only that the script runs every CPU path and prints the markdown
tables. The peers (benchmarks/loss_peers.py) are checked in-process against
:func:`supcon.supcon_loss`, so that the benchmark compares the same computation.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "loss.py"


def _load_peers():
    spec = importlib.util.spec_from_file_location("loss_peers", SCRIPT.parent / "loss_peers.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_quick_cpu_run_prints_table() -> None:
    # N = 512, one timed pass per path, one short subprocess per path: seconds, mostly imports.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    header = "| N | path | time ms | best ms | peak MiB | time / default | memory / default |"
    assert header in lines, proc.stdout
    table = lines[lines.index(header):]
    table = table[: table.index("")] if "" in table else table
    rows = {line.split("|")[2].strip(): line for line in table if line.startswith("| 512 |")}
    assert set(rows) == {"default (dense)", "dense", "tiled", "supcontrast", "lightly", "pml"}, (
        proc.stdout)
    for name, row in rows.items():
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        if name == "pml" and "not installed" in cells[2]:
            continue  # a benchmark-only dependency: skipped with a note
        assert float(cells[2]) > 0 and float(cells[4]) >= 0, row  # measured, not failed
    assert rows["default (dense)"].endswith("| 1.00x | 1.00x |")
    assert any(line.startswith("| N | default | dense | tiled |") for line in lines), proc.stdout


def _peer_check(loss, expected, features) -> None:
    (grad,) = torch.autograd.grad(loss, features)
    (expected_grad,) = torch.autograd.grad(expected, features)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)


def test_supcontrast_style_peer_matches_supcon_loss() -> None:
    from supcon.losses import supcon_loss

    bench = _load_peers()
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(12, 2, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (12,), generator=gen)
    _peer_check(bench.supcontrast_style_loss(features, labels, temperature=0.1),
                supcon_loss(features, labels, temperature=0.1, chunk_size=None), features)


def test_lightly_style_peer_is_nt_xent() -> None:
    """Two views, no labels: supcon_loss is SimCLR's NT-Xent, which the lightly-style peer is."""
    from supcon.losses import supcon_loss

    bench = _load_peers()
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(10, 2, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    _peer_check(bench.lightly_style_loss(features, temperature=0.2),
                supcon_loss(features, temperature=0.2, chunk_size=None), features)


def test_pml_peer_matches_supcon_loss_where_installed() -> None:
    from supcon.losses import supcon_loss

    bench = _load_peers()
    if not bench.pml_available():
        pytest.skip("pytorch-metric-learning is a benchmark-only dependency (.[bench])")
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(12, 2, 16, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (12,), generator=gen)
    _peer_check(bench.pml_loss(features, labels, temperature=0.1),
                supcon_loss(features, labels, temperature=0.1, chunk_size=None), features)


def test_missing_pml_is_skipped_with_a_note(monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("loss_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "pml_available", lambda: False)
    features, labels = bench._make_inputs(8, 4, 2, "cpu")
    assert "not installed" in bench._skip_reason("pml", 8, False, features, labels)
    assert bench._skip_reason("supcontrast", 8, False, features, labels) is None
