"""The training commands: parse flags into a Config, call the library, print a one-line summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supcon import distributed
from supcon.cli.args import add_config_flags, add_run_flags, config_from_args, config_from_checkpoint, resume_overwrite
from supcon.checkpoint import encoder_from_checkpoint, encoder_input, load_checkpoint
from supcon.config import DEFAULT_RUN_METHODS, RUN_METHODS, Config
from supcon.data import load_splits
from supcon.data.adapt import load_adapted_splits
from supcon.eval.pipeline import launched_as_rank_zero, run_methods
from supcon.report.plots import training_plots
from supcon.report.tables import markdown_table
from supcon.runfiles import CHECKPOINT_NAME, SUMMARY_MD, write_text_atomic
from supcon.train.methods import METHODS, knn_evaluate, train_ce, train_linear
from supcon.train.runtime import setup_runtime

__all__ = ["add_pretrain_arguments", "run_pretrain_command", "add_linear_arguments", "run_linear_command",
           "add_train_ce_arguments", "run_train_ce_command", "add_knn_arguments", "run_knn_command",
           "add_run_arguments", "run_run_command", "comparison_table"]


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    if distributed.rank() != 0:  # under torchrun, rank 0 reports
        return
    keys = [k for k in ("loss", "test_acc", "online_probe_acc", "knn_acc", "total_seconds") if k in metrics]
    print(f"{title}: " + ", ".join(f"{k}={metrics[k]:.4g}" for k in keys))


def _inputs(args: argparse.Namespace) -> list[Path]:
    """The files a command reads besides its dataset and checkpoint: the --config file."""
    return [args.config] if getattr(args, "config", None) is not None else []


_CHECKPOINT_HELP = ("pretrain or CE checkpoint.pt; its encoder may come from another dataset (transfer: the "
                    "images are resized to its side, gray <-> RGB converted, normalised with its statistics)")


def _training_arguments(default_out: str, checkpoint: bool = False) -> Callable[[argparse.ArgumentParser], None]:
    """The flags of a training command: [--checkpoint], --out and its modes, every Config field."""

    def add(p: argparse.ArgumentParser) -> None:
        if checkpoint:
            p.add_argument("--checkpoint", type=Path, required=True, help=_CHECKPOINT_HELP)
        add_run_flags(p, default_out)
        add_config_flags(p)

    return add


add_pretrain_arguments = _training_arguments("runs/pretrain")
add_linear_arguments = _training_arguments("runs/linear", checkpoint=True)
add_train_ce_arguments = _training_arguments("runs/ce")


def run_pretrain_command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    resume, overwrite = resume_overwrite(args)
    # supcon, simclr: pretrain; supcon+ce: train_joint (the METHODS entry of --method)
    metrics = METHODS[cfg.method].train(cfg, args.out, resume=resume, overwrite=overwrite,
                                        callbacks=training_plots(cfg), inputs=_inputs(args))
    _print_metrics(f"pretrain ({cfg.method}) -> {args.out / CHECKPOINT_NAME}", metrics)
    return 0


def run_linear_command(args: argparse.Namespace) -> int:
    cfg = config_from_checkpoint(args)
    resume, overwrite = resume_overwrite(args)
    metrics = train_linear(cfg, args.checkpoint, args.out, resume=resume, overwrite=overwrite,
                           callbacks=training_plots(cfg), inputs=_inputs(args))
    _print_metrics(f"{'fine-tune' if cfg.finetune else 'linear probe'} -> {args.out}", metrics)
    return 0


def run_train_ce_command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    resume, overwrite = resume_overwrite(args)
    metrics = train_ce(cfg, args.out, resume=resume, overwrite=overwrite, callbacks=training_plots(cfg),
                       inputs=_inputs(args))
    _print_metrics(f"cross-entropy -> {args.out / CHECKPOINT_NAME}", metrics)
    return 0


def add_knn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help=_CHECKPOINT_HELP)
    add_config_flags(p)


def run_knn_command(args: argparse.Namespace) -> int:
    cfg = config_from_checkpoint(args)
    rt = setup_runtime(cfg)
    target = encoder_input(load_checkpoint(args.checkpoint, kind=("pretrain", "ce")), args.checkpoint)
    if target is None:  # a checkpoint that does not record its data: used as it is
        data = load_splits(cfg)
    else:  # another dataset is adapted to the encoder as `supcon linear` adapts it
        data, adaptation = load_adapted_splits(cfg, target, checkpoint=args.checkpoint)
        if adaptation.is_transfer:
            print(adaptation.describe())
    encoder, _ = encoder_from_checkpoint(args.checkpoint, cfg, channels=data.channels)
    acc = knn_evaluate(encoder.to(rt.device), data, rt, cfg)
    print(f"kNN (k={cfg.knn_k}) top-1 on {cfg.dataset} test split: {acc:.2f}%")
    return 0


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of a `supcon run`: one row per method."""
    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, (int, float)) else str(value)

    rows = []
    for method, r in results.items():
        probe, knn = r.get("linear_acc"), r.get("knn_acc")
        both = probe is not None and knn is not None
        rows.append([method, cell(probe) if both else str(probe), cell(knn) if both else str(knn),
                     f"{r.get('seconds', 0):.1f}"])
    return markdown_table(["method", "linear-probe top-1 (%)", "kNN top-1 (%)", "train time (s)"], rows)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    add_run_flags(p, "runs/run")
    p.add_argument("--methods", default=",".join(DEFAULT_RUN_METHODS),
                   help=f"comma-separated subset of {','.join(RUN_METHODS)}")
    add_config_flags(p)


def run_run_command(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    # Each stage of `run` already resumes only where its checkpoint exists.
    resume = args.resume or (args.auto_resume and args.out.is_dir())
    results = run_methods(cfg, args.out, methods, resume=resume, overwrite=args.overwrite,
                          callbacks=training_plots(cfg), inputs=_inputs(args))
    if not launched_as_rank_zero():
        return 0
    table = comparison_table(results)
    write_text_atomic(args.out / SUMMARY_MD, table + "\n")
    print(f"\nResults on {cfg.dataset} ({cfg.arch}, {cfg.epochs} epochs, batch {cfg.batch_size}):")
    print(table)
    print(f"\nrun directories, plots and summary.md in {args.out}")
    return 0
