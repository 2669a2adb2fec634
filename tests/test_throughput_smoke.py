"""Smoke test of benchmarks/throughput.py: the quick mode runs on a CPU and prints both paths.

Timings are never asserted: only that the script runs, prints its markdown table with a row per
path, and writes the JSON it promises. The reference path's loss and Pillow transform are checked
in-process, so the baseline measures the same computation as the project's path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "throughput.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("throughput_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _run(*flags: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(SCRIPT), *flags], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def _table(lines: list[str], header: str) -> list[str]:
    """The rows of the Markdown table under ``header`` (up to the first blank line)."""
    start = lines.index(header) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_quick_cpu_run_prints_both_paths(tmp_path: Path) -> None:
    # Smaller than --quick alone (batch 4, no warm-up, one timed step): ~7 s of CPU, mostly imports.
    out = tmp_path / "throughput.json"
    proc = _run("--quick", "--batch", "4", "--warmup", "0", "--steps", "1", "--device", "cpu",
                "--workers", "0", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    rows = _table(lines, "| model | path | images/s | vs (b) reference | vs row above | MFU |")
    assert len(rows) == 2 and all(r.startswith("| resnet18 |") for r in rows), proc.stdout
    assert "(a) ours (defaults)" in rows[0] and "(b) reference" in rows[1]
    for row in rows:
        rate = row.split("|")[3].strip()
        assert re.fullmatch(r"[\d,]+", rate) and float(rate.replace(",", "")) > 0, row
        assert re.search(r"\d+\.\d\dx", row), row  # both paths measured: a ratio is shown
    split = _table(lines, "| model | path | step ms | augmentation | data | forward | loss | backward | optimizer "
                          "| other |")
    assert [r.split("|")[2].strip() for r in split] == ["(a) project", "(b) reference"], proc.stdout
    assert "torch " in proc.stdout and "command: `python" in proc.stdout
    data = json.loads(out.read_text())
    assert [r["path"] for r in data["rows"]] == ["ours", "reference"]
    for r in data["rows"]:
        assert r["images_per_s"] > 0 and r["batch"] == 4 and "error" not in r
        # ResNet-18, CIFAR stem: ~0.56 GMACs per 32x32 view -> 3 x 2 views x 2 x 0.56e9 FLOPs.
        assert 6e9 < r["flops_per_image"] < 7.5e9
        assert r["split_ms"]["step"] > 0 and r["split_ms"]["forward"] > 0
    assert data["rows"][0]["split_ms"]["augmentation"] > 0 and data["rows"][1]["split_ms"]["data"] > 0


@pytest.mark.slow
def test_every_variant_of_our_path_runs(tmp_path: Path) -> None:
    # The CPU history of our step (kornia before, batched augmentation, channels_last, malloc keeping
    # freed memory, bf16) on cifar-fast, each row in its own process.
    out = tmp_path / "throughput.json"
    proc = _run("--quick", "--batch", "4", "--warmup", "0", "--steps", "1", "--device", "cpu", "--models",
                "cifar-fast", "--paths", "ours", "--ours", "kornia,batched-aug,channels-last,project,bf16", "--json",
                str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["kornia", "batched-aug", "channels-last", "project", "bf16"]
    assert [r["channels_last"] for r in rows] == [False, False, True, True, True]
    assert [r["keeps_freed_memory"] for r in rows] == [False, False, False, True, True]
    assert [r["amp"] for r in rows] == ["fp32", "fp32", "fp32", "fp32", "bfloat16"]
    assert all(r["images_per_s"] > 0 for r in rows)


@pytest.mark.slow
def test_quick_cpu_run_with_dataloader_workers(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    proc = _run("--quick", "--batch", "4", "--device", "cpu", "--workers", "1", "--paths", "reference",
                "--peak-tflops", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (row,) = json.loads(out.read_text())["rows"]
    assert row["path"] == "reference" and row["images_per_s"] > 0 and 0 < row["mfu"] < 1
    assert "%" in [line for line in proc.stdout.splitlines() if line.startswith("| resnet18")][0]


def test_reference_loss_matches_supcon_loss() -> None:
    from supcon.losses import supcon_loss

    bench = _load_benchmark()
    gen = torch.Generator().manual_seed(0)
    features = torch.nn.functional.normalize(torch.randn(12, 2, 16, generator=gen), dim=-1)
    labels = torch.randint(0, 4, (12,), generator=gen)
    expected = supcon_loss(features, labels, temperature=bench.TEMPERATURE)
    torch.testing.assert_close(bench.reference_supcon_loss(features, labels), expected)


def test_reference_transform_gives_two_normalised_crops() -> None:
    from PIL import Image

    bench = _load_benchmark()
    image = Image.fromarray(torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8).numpy())
    crops = bench.TwoCropTransform(bench.SimAugmentPIL(32, bench.MEAN, bench.STD))(image)
    assert len(crops) == 2
    for crop in crops:
        assert crop.shape == (3, 32, 32) and crop.dtype == torch.float32
        assert crop.min() >= (0 - max(bench.MEAN)) / min(bench.STD) - 1e-5
        assert crop.max() <= (1 - min(bench.MEAN)) / min(bench.STD) + 1e-5
