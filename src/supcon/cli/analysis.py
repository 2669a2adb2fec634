"""The analysis commands: robustness, sweep, gradients and report. Each parses its flags, calls the
library (with the report layer's plot writers as ``on_finish``) and prints what it found."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supcon.cli.args import add_config_flags, config_from_args
from supcon.config import RUN_METHODS
from supcon.eval.gradients import run_gradients
from supcon.eval.robustness import parse_corruptions, parse_severities, run_robustness
from supcon.eval.sweep import SweepRun, parse_grid, plan_sweep, run_sweep, sweep_spread
from supcon.report.plots import write_gradients_plot, write_robustness_plots, write_sweep_plot
from supcon.report.tables import gradients_table, markdown_table, robustness_table
from supcon.report.write import write_report
from supcon.runfiles import (GRADIENTS_CSV, GRADIENTS_JSON, GRADIENTS_PLOT, ROBUSTNESS_CSV, ROBUSTNESS_JSON,
                             SWEEP_BOX, SWEEP_CSV, SWEEP_JSON)

__all__ = ["add_robustness_arguments", "run_robustness_command", "add_sweep_arguments", "run_sweep_command",
           "add_gradients_arguments", "run_gradients_command", "add_report_arguments", "run_report_command"]


def _counter(total: int) -> Callable[[], str]:
    """``next_index()`` -> ``"[1/total]"``, ``"[2/total]"``, ...: the counter of progress lines."""
    done = [0]

    def next_index() -> str:
        done[0] += 1
        return f"[{done[0]}/{total}]"

    return next_index


def add_robustness_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="linear-probe or CE checkpoint.pt")
    p.add_argument("--baseline", type=Path, default=None,
                   help="baseline classifier checkpoint for CE / mCE / relative mCE (e.g. the CE run)")
    p.add_argument("--corruptions", default="all",
                   help="all (the 15 of CIFAR-10-C), all+extra, groups (noise, blur, weather, digital, "
                        "extra) or comma-separated names (default: all)")
    p.add_argument("--severities", default="1,2,3,4,5", help="comma-separated severities 1..5 (default: all)")
    p.add_argument("--cifar-c", type=Path, default=None,
                   help="read CIFAR-10-C arrays (<name>.npy, labels.npy) instead of corrupting the test split")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic corruptions (default: 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=512, help="evaluation batch size (default: 512)")
    p.add_argument("--no-plots", dest="plots", action="store_false", help="skip the PNG plots")
    p.add_argument("--out", type=Path, default=Path("runs/robustness"), help="output folder")


def run_robustness_command(args: argparse.Namespace) -> int:
    names = parse_corruptions(args.corruptions)  # fail fast, before loading anything
    sevs = parse_severities(args.severities)
    step = _counter(len(names) * len(sevs))

    def progress(corruption: str, severity: int) -> None:
        print(f"  {step()} {corruption} s{severity}", flush=True)

    summary = run_robustness(args.checkpoint, args.out, baseline=args.baseline, corruptions=names,
                             severities=sevs, cifar_c=args.cifar_c, seed=args.seed, device=args.device,
                             batch_size=args.batch_size, on_finish=write_robustness_plots if args.plots else None,
                             on_result=progress)
    print(f"\nRobustness on {summary['dataset']} ({summary['source']}, {len(names)} corruptions x "
          f"severities {','.join(map(str, sevs))}; mCE over {len(summary['mce_corruptions'])} benchmark corruptions"
          f"{'' if summary['mce_complete'] else ', not the full 15 x 5'}):")
    print(robustness_table(summary))
    for note in summary["notes"]:
        print(f"note: {note}")
    print(f"\n{ROBUSTNESS_JSON}, {ROBUSTNESS_CSV} and plots in {args.out}")
    return 0


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", nargs="+", required=True, metavar="KEY=V1,V2",
                   help="config keys and their values, e.g. temperature=0.05,0.1 batch_size=64,128")
    p.add_argument("--methods", default="supcon,ce", help=f"comma-separated subset of {','.join(RUN_METHODS)}")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"), help="sweep folder (default: runs/sweep)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="reuse finished runs in --out, train the rest")
    mode.add_argument("--overwrite", action="store_true", help="replace a sweep already in --out (only what supcon wrote)")
    add_config_flags(p)


def run_sweep_command(args: argparse.Namespace) -> int:
    base = config_from_args(args)
    grid = parse_grid(args.grid)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    runs = plan_sweep(base, grid, methods)
    counts = ", ".join(f"{m}: {sum(r.method == m for r in runs)}" for m in dict.fromkeys(methods))
    print(f"sweep: {len(runs)} runs ({counts})")
    step = _counter(len(runs))

    def report_run(run: SweepRun, row: dict[str, Any]) -> None:
        print(f"  {step()} {run.name}: accuracy {row['accuracy']:.2f}% ({row['seconds']:.1f}s)", flush=True)

    rows = run_sweep(base, grid, methods, args.out, resume=args.resume, overwrite=args.overwrite,
                     on_finish=write_sweep_plot if base.plots else None, on_result=report_run,
                     inputs=[args.config] if args.config is not None else [])
    spread = [[method, s["runs"], *(f"{s[k]:.2f}" for k in ("mean", "std", "min", "median", "max"))]
              for method, s in sweep_spread(rows).items()]
    print("\n" + markdown_table(["method", "runs", "mean (%)", "std", "min", "median", "max"], spread))
    print(f"\n{SWEEP_CSV}, {SWEEP_JSON} and {SWEEP_BOX} in {args.out}")
    return 0


def add_gradients_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="pretrain checkpoint.pt (encoder + projection head), or a linear one on it")
    p.add_argument("--batch", type=int, default=256, help="test images in the batch (two views each)")
    p.add_argument("--bins", type=int, default=10, help="similarity bins for the binned means")
    p.add_argument("--seed", type=int, default=0, help="seed of the image draw and the augmentations")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--out", type=Path, default=Path("runs/gradients"), help="output folder")


def run_gradients_command(args: argparse.Namespace) -> int:
    analysis = run_gradients(args.checkpoint, args.out, batch=args.batch, seed=args.seed, device=args.device,
                             bins=args.bins, on_finish=write_gradients_plot)
    print(f"Gradient terms on {analysis['images']} test images x 2 views of {analysis['dataset']} "
          f"(t = {analysis['temperature']}); hard positives = below-median similarity, "
          "hard negatives = above-median:")
    print(gradients_table(analysis))
    print(f"\n{GRADIENTS_JSON}, {GRADIENTS_CSV} and {GRADIENTS_PLOT} in {args.out}")
    return 0


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders: single runs, `supcon run` folders, robustness / sweep / gradients outputs")
    p.add_argument("--out", type=Path, default=Path("runs/report"), help="output folder (default: runs/report)")
    p.add_argument("--title", default="supcon report", help="report title")


def run_report_command(args: argparse.Namespace) -> int:
    md_path, html_path = write_report(args.run_dirs, args.out, title=args.title)
    print(f"report: {md_path} and {html_path} (self-contained)")
    return 0
