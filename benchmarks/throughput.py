"""Pretraining throughput: images/s of one SupCon training step, this project vs the reference style.

Two paths train the same encoder (``--models``: the CPU CIFAR encoder ``cifar-fast``, CIFAR-stem
ResNets; + MLP head) on the same synthetic uint8 32x32 RGB data (100 classes), 2 views per image,
measured in one run on the same device, one after the other, each row in a fresh process
(throughput_run.py: no allocator, thread-pool or memory state carries over between rows):

* ``ours`` (throughput_ours.py): the step :func:`supcon.train.methods.pretrain` runs, from the
  engine's own pieces; on CPU also earlier states of it (``--ours kornia,batched-aug,channels-last,
  project``) so that one run shows what each change bought.
* ``reference`` (throughput_reference.py): the style of the original SupContrast code, Pillow
  transforms of the same augmentation in DataLoader workers, fp32 eager.

Timing: ``--warmup`` untimed steps (compilation and cuDNN autotuning happen there), then
``--steps`` timed steps, the device synchronised before and after; images/s = batch x steps /
seconds (an image is one sample; each carries 2 views). The reference times
``max(--steps, 4 x workers)`` steps unless ``--reference-steps`` says otherwise: its workers deliver
batches in rounds of ``workers``, and a window of a few rounds keeps that quantisation small.
``--repeats`` rounds over all rows (3 on CPU, where other processes come and go) show each row's
median round.

Time split: milliseconds per step in augmentation (views, normalisation, memory layout), waiting for
data (the reference's DataLoader), forward (encoder + head), loss, backward (with zero_grad),
optimizer, other. On the CPU the timed steps themselves are split (reading the clock is free
there); on CUDA ``--split-steps`` extra steps synchronise the device at each phase boundary.

MFU (model FLOPs utilisation) = 3 x forward FLOPs per image (counted by ``FlopCounterMode`` over 2
views) x images/s / the GPU's dense bf16 peak (H100 SXM / H200 989, H100 PCIe 756, H100 NVL 835,
A100 312 TFLOP/s; ``--peak-tflops`` overrides). On CUDA an untimed probe counts host-device
synchronisations per step (``torch.cuda.set_sync_debug_mode``): the project's step should show 0.

The script prints numbers and asserts no timings.

Usage::

    python benchmarks/throughput.py --device cpu --threads 2            # cifar-fast, batch 256, ~3 min
    python benchmarks/throughput.py --device cpu --threads 2 --models resnet18 --steps 2 --warmup 2 \
        --reference-steps 2 --repeats 1                                  # ResNet-18 steps take 5-12 s
    python benchmarks/throughput.py                      # CUDA: resnet18 + resnet50, batch 1024
    python benchmarks/throughput.py --quick --device cpu --workers 0     # a seconds-long smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the throughput_*.py next to this file

from throughput_ours import VARIANTS  # noqa: E402
from throughput_recipe import IMAGE_SIZE, MEAN, PHASES, STD, TEMPERATURE, VIEWS, peak_flops  # noqa: E402,F401
from throughput_run import run_row  # noqa: E402
from throughput_reference import SimAugmentPIL, TwoCropTransform, reference_supcon_loss  # noqa: E402,F401

PATHS = ("ours", "reference")
CUDA_DEFAULTS: dict[str, Any] = {"batch": 1024, "steps": 20, "warmup": 5, "models": "resnet18,resnet50",
                                 "width": 1, "ours": "project", "split_steps": 3, "repeats": 1}
CPU_DEFAULTS: dict[str, Any] = {"batch": 256, "steps": 10, "warmup": 2, "models": "cifar-fast",
                                "width": 1, "ours": "kornia,batched-aug,channels-last,project", "split_steps": 0,
                                "repeats": 3}
QUICK_DEFAULTS: dict[str, Any] = {"batch": 16, "steps": 2, "warmup": 1, "models": "resnet18", "width": 1,
                                  "ours": "project", "split_steps": 1, "repeats": 1}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None,
                        help="comma-separated encoders (CPU: cifar-fast; CUDA: resnet18,resnet50)")
    parser.add_argument("--width", type=int, default=None, help="width multiplier (1)")
    parser.add_argument("--batch", type=int, default=None, help="images per step, each gives 2 views "
                        "(CPU 256, CUDA 1024)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (CPU 10, CUDA 20)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (CPU 2, CUDA 5)")
    parser.add_argument("--reference-steps", type=int, default=None,
                        help="timed steps of the reference path (default: max(steps, 4 x workers))")
    parser.add_argument("--split-steps", type=int, default=None,
                        help="extra synchronised steps for the time split on CUDA (3; the CPU splits the timed steps)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in the project's path")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                        help="DataLoader workers of the reference path (default: min(8, cpu count))")
    parser.add_argument("--paths", default=",".join(PATHS), help="comma-separated: ours,reference")
    parser.add_argument("--ours", default=None, help="variants of the project's path, comma-separated: "
                        f"{','.join(VARIANTS)} (CPU: all but bf16; CUDA: project)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="rounds over all rows; each row shows its median round (CPU 3, CUDA 1)")
    parser.add_argument("--dataset-size", type=int, default=50_000, help="synthetic training images")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak for MFU (TFLOP/s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: batch 16, 2 steps, 1 warm-up, resnet18, the project variant only "
                             "(seconds on CPU); flags given explicitly still win")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.device = _resolve_device(args.device)
    defaults = QUICK_DEFAULTS if args.quick else CPU_DEFAULTS if args.device.type == "cpu" else CUDA_DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.quick and args.reference_steps is None:
        args.reference_steps = args.steps
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    args.ours = [v.strip() for v in args.ours.split(",") if v.strip()]
    for p in args.paths:
        if p not in PATHS:
            parser.error(f"--paths takes {', '.join(PATHS)}; got {p!r}")
    for v in args.ours:
        if v not in VARIANTS:
            parser.error(f"--ours takes {', '.join(VARIANTS)}; got {v!r}")
    for name in ("batch", "steps", "width", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0 or args.workers < 0 or args.split_steps < 0:
        parser.error("--warmup, --workers and --split-steps must be >= 0")
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.reference_steps is None:
        args.reference_steps = max(args.steps, 4 * args.workers)
    return args


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {name} asked for, but CUDA is not available")
        if device.index is None:  # torch.cuda.set_device refuses a bare "cuda"
            device = torch.device("cuda", torch.cuda.current_device())
    return device


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median images/s (the lower middle one of an even count), with every
    round's images/s in ``images_per_s_rounds``; a failed round wins (its error is shown)."""
    failed = [r for r in rows if "error" in r]
    if failed:
        return failed[0]
    ranked = sorted(rows, key=lambda r: r["images_per_s"])
    row = dict(ranked[(len(ranked) - 1) // 2])
    row["images_per_s_rounds"] = [r["images_per_s"] for r in rows]
    return row


def _label(row: dict[str, Any]) -> str:
    if row["path"] == "reference":
        return f"(b) reference: {row.get('augment', '')}, fp32 eager"
    label = f"(a) {row.get('variant_label', row.get('variant'))}: {row.get('augment', '')}, {row.get('amp', '')}"
    for key, text in (("channels_last", "channels_last"), ("keeps_freed_memory", "malloc keeps freed memory"),
                      ("fused_sgd", "fused SGD"), ("compile", "compile")):
        if row.get(key):
            label += f", {text}"
    return label


def markdown_table(rows: list[dict[str, Any]], peak: float | None) -> str:
    """images/s per row, its ratio to the same model's reference row and to the row above."""
    lines = ["| model | path | images/s | vs (b) reference | vs row above | MFU |",
             "|---|---|---:|---:|---:|---:|"]
    previous: dict[str, float | None] = {}
    for row in rows:
        rate = row.get("images_per_s")
        ref = next((r.get("images_per_s") for r in rows if r["model"] == row["model"] and r["path"] == "reference"),
                   None)
        vs_ref = f"{rate / ref:.2f}x" if rate and ref else "-"
        above = previous.get(row["model"])
        vs_above = f"{rate / above:.2f}x" if rate and above and row["path"] == "ours" else "-"
        if row["path"] == "ours":
            previous[row["model"]] = rate
        mfu = "-"
        if rate and peak and row.get("flops_per_image"):
            row["mfu"] = row["flops_per_image"] * rate / peak
            mfu = f"{100 * row['mfu']:.1f}%"
        shown = row.get("error") or ("-" if rate is None else f"{rate:,.0f}")
        lines.append(f"| {row['model']} | {_label(row)} | {shown} | {vs_ref} | {vs_above} | {mfu} |")
    return "\n".join(lines)


def split_table(rows: list[dict[str, Any]]) -> str:
    """Milliseconds per step and phase (share of the step in brackets); ``other`` is the remainder."""
    lines = ["| model | path | step ms | " + " | ".join(PHASES) + " |", "|---|---|" + "---:|" * (len(PHASES) + 1)]
    for row in rows:
        split = row.get("split_ms")
        if not split:
            continue
        total = split["step"]
        parts = dict(split)
        parts["other"] = max(0.0, total - sum(split[p] for p in PHASES if p != "other"))
        cells = [f"{parts[p]:.1f} ({100 * parts[p] / total:.0f}%)" if parts[p] > 0 else "-" for p in PHASES]
        name = "(b) reference" if row["path"] == "reference" else f"(a) {row['variant']}"
        lines.append(f"| {row['model']} | {name} | {total:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = args.device
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    need = args.batch * (args.warmup + max(args.steps, args.reference_steps) + args.split_steps + 4)
    n_images = max(args.dataset_size, need) if not args.quick else need
    peak, peak_source = peak_flops(device, args.peak_tflops)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads)")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__)] + sys.argv[1:])
    header = {
        "device": device_name, "torch": torch.__version__, "kornia": _version("kornia"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command, "batch": args.batch, "views": VIEWS, "image_size": IMAGE_SIZE,
        "warmup": args.warmup, "steps": args.steps, "reference_steps": args.reference_steps,
        "threads": torch.get_num_threads(), "workers": args.workers, "repeats": args.repeats,
        "dataset_images": n_images,
        "peak_bf16_flops": peak, "peak_source": peak_source,
    }
    keys = [(arch, path, variant) for arch in args.models for path in args.paths
            for variant in (args.ours if path == "ours" else [None])]
    settings = {"device": str(device), "threads": args.threads, "n_images": n_images, "seed": args.seed,
                "batch": args.batch, "width": args.width, "warmup": args.warmup, "steps": args.steps,
                "reference_steps": args.reference_steps, "split_steps": args.split_steps,
                "workers": args.workers, "compile": args.compile}
    runs: dict[tuple, list[dict[str, Any]]] = {key: [] for key in keys}
    spawn = multiprocessing.get_context("spawn")
    for repeat in range(args.repeats):  # rounds over every row, so slow spells on the machine hit all rows
        for key in keys:
            with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:  # a fresh process per row
                row = pool.submit(run_row, settings, *key).result()
            runs[key].append(row)
            rate = row.get("images_per_s")
            print(f"# round {repeat + 1}: {' '.join(k for k in key if k)}: "
                  f"{row.get('error') or f'{rate:,.0f} images/s'}", file=sys.stderr, flush=True)
    rows = [median_row(runs[key]) for key in keys]
    print(f"SupCon pretraining throughput: {args.batch} images x {VIEWS} views of {IMAGE_SIZE}x{IMAGE_SIZE} "
          f"RGB, encoder (width {args.width}) + MLP head")
    print(f"- device: {device_name}")
    print(f"- torch {header['torch']}, kornia {header['kornia']}, {header['date']}")
    print(f"- command: `{command}`")
    print(f"- timing: warm-up steps {args.warmup}, then timed steps {args.steps} (reference: "
          f"{args.reference_steps}); reference DataLoader workers: {args.workers}; median of {args.repeats} "
          f"round(s) over all rows")
    peak_text = f"{peak / 1e12:.0f} TFLOP/s ({peak_source})" if peak else peak_source
    print(f"- MFU: 3 x forward FLOPs per image x images/s / dense bf16 peak = {peak_text}")
    print()
    print(markdown_table(rows, peak))
    if any(r.get("split_ms") for r in rows):
        where = "the timed steps" if device.type == "cpu" else f"{args.split_steps} synchronised extra steps"
        print()
        print(f"Time split of a step, ms (share of the step), from {where}:")
        print()
        print(split_table(rows))
    syncs = [f"{r['model']} {r['path']} {r['variant'] or ''}: {r['syncs_per_step']:g}" for r in rows
             if r.get("syncs_per_step") is not None]
    if syncs:
        print()
        print("host-device syncs per step (untimed probe): " + "; ".join(syncs))
    sys.stdout.flush()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**header, "rows": rows}, indent=2, default=str))
    return 1 if any(row.get("failed") for row in rows) else 0


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except Exception:  # pragma: no cover - informational only
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
