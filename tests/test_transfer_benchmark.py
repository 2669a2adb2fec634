"""benchmarks/transfer.sh: the dry run lists every probe; a tiny stand-in of the whole benchmark prints its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tiny_runs import TINY_SETTINGS, flags_for
from transfer_runs import write_gray_npz, write_rgb_folder

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "transfer.sh"
SUPCON = str(Path(sys.executable).with_name("supcon"))


def _run(env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, "SUPCON": SUPCON, **env}, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _table(stdout: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| pretrained on")]


def test_the_dry_run_lists_every_probe_and_the_mnist_pretraining(tmp_path):
    proc = _run({"DRY_RUN": "1", "OUT": str(tmp_path / "out"), "CIFAR_RUN": str(tmp_path / "c"),
                 "MNIST_RUN": str(tmp_path / "m")})
    commands = [line for line in proc.stderr.splitlines() if line.startswith("+ ")]
    probes = [c for c in commands if " linear --checkpoint " in c]
    assert len(probes) == 18 and all("--linear-epochs 10" in c and "--overwrite" in c for c in probes)
    assert sum("--dataset digits" in c for c in probes) == 6
    assert [c for c in commands if " run --config configs/mnist_small.yaml" in c]
    rows = _table(proc.stdout)
    assert [r[:2] for r in rows] == [[s, m] for s in ("CIFAR-10", "MNIST") for m in ("supcon", "simclr", "ce")]
    assert (tmp_path / "out" / "transfer.md").is_file()


@pytest.mark.slow
def test_a_tiny_stand_in_of_the_benchmark_prints_measured_cells(tmp_path):
    """An RGB folder stands in for CIFAR-10 and a gray npz for MNIST; SupCon and CE, tiny budgets."""
    folder, npz = write_rgb_folder(tmp_path / "rgb"), write_gray_npz(tmp_path / "gray.npz")
    tiny = flags_for({**TINY_SETTINGS, "threads": 1})
    cifar_run = tmp_path / "cifar"
    subprocess.run([SUPCON, "run", "--methods", "supcon,ce", "--dataset", f"folder:{folder}", "--out", str(cifar_run),
                    *tiny], check=True, capture_output=True, cwd=ROOT, timeout=300)
    proc = _run({"OUT": str(tmp_path / "out"), "CIFAR_RUN": str(cifar_run), "MNIST_RUN": str(tmp_path / "mnist"),
                 "CIFAR_SPEC": f"folder:{folder}", "MNIST_SPEC": f"npz:{npz}", "METHODS": "supcon ce",
                 "MNIST_RUN_FLAGS": " ".join(tiny), "PROBE": "--linear-epochs 1 --linear-batch-size 16",
                 "FLAGS": "--device cpu --threads 1 --no-plots --no-progress"})
    rows = _table(proc.stdout)
    assert [r[:2] for r in rows] == [["CIFAR-10", "supcon"], ["CIFAR-10", "ce"], ["MNIST", "supcon"], ["MNIST", "ce"]]
    for row in rows:
        cells = [c.replace("**", "").replace(" (in-domain)", "") for c in row[2:]]
        assert all(0 <= float(c) <= 100 for c in cells), row
    assert "(in-domain)" in rows[0][2] and "(in-domain)" in rows[2][3]
    assert (tmp_path / "mnist" / "ce" / "checkpoint.pt").is_file()  # pretrained by the script
