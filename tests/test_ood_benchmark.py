"""Smoke test of benchmarks/ood.sh on a tiny ``supcon run`` folder standing in for the CIFAR-10 and MNIST
runs, with digits as the OOD dataset: every model and score reaches the one table it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supcon.cli import main
from tiny_runs import TINY_SETTINGS, flags_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_ood_script_prints_one_table(tiny_npz, tmp_path):
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), *flags_for({"dataset": f"npz:{tiny_npz}", **TINY_SETTINGS})]) == 0
    env = {**os.environ, "CIFAR_RUN": str(run), "MNIST_RUN": str(run), "CIFAR_OOD": "digits", "MNIST_OOD": "digits",
           "K": "5", "OUT": str(tmp_path / "ood"), "PYTHON": sys.executable,
           "SUPCON": f"{sys.executable} -m supcon", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "ood.sh")], capture_output=True, text=True,
                          timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "| in -> OOD | model | score | AUROC (%) | AUPR-In (%) | AUPR-Out (%) | FPR@95%TPR (%) |" in lines
    rows = [line for line in lines if line.startswith("| CIFAR-10 (32) -> digits (1797)") or
            line.startswith("| MNIST (32) -> digits (1797)")]
    assert len(rows) == 2 * 3 * 5, proc.stdout  # two pairs, supcon / simclr / ce, five scores each
    assert {row.split("|")[2].strip() for row in rows} == {"supcon (linear probe)", "simclr (linear probe)", "ce"}


def test_missing_run_says_what_to_train(tmp_path):
    env = {**os.environ, "CIFAR_RUN": str(tmp_path / "none"), "STEPS": "cifar", "OUT": str(tmp_path / "ood"),
           "PYTHON": sys.executable, "SUPCON": f"{sys.executable} -m supcon"}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "ood.sh")], capture_output=True, text=True,
                          timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 2 and "is missing: train the CIFAR-10 encoders first" in proc.stderr, proc.stderr
