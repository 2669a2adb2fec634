"""The ``supcon`` command line: thin subcommands that parse, build a Config and call a function.

Every training flag comes from :class:`supcon.config.Config` (``--batch-size`` sets
``batch_size``); ``--config FILE.yaml`` supplies defaults and flags override them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from supcon.config import FIELD_HELP, Config, ConfigError, config_from_dict, known_config_values

__all__ = ["main", "build_parser", "COMMANDS"]

log = logging.getLogger("supcon")

#: Extra subcommands registered by other modules: name -> (add_arguments, run, help).
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {}


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("configuration (defaults < --config YAML < flags)")
    group.add_argument("--config", type=Path, default=None, help="YAML file of config keys")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f"{FIELD_HELP.get(f.name, '')} (default: {default})"
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def _add_run_flags(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default_out), help=f"run directory (default: {default_out})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    mode.add_argument("--auto-resume", action="store_true",
                      help="resume when --out holds a checkpoint, else start a new run there "
                           "(for torchrun --max-restarts and preemptible jobs)")


def _resume_overwrite(args: argparse.Namespace) -> tuple[bool, bool]:
    """(resume, overwrite) from --resume / --overwrite / --auto-resume.

    --auto-resume continues from ``--out/checkpoint.pt`` when it exists. Without one it starts
    afresh, replacing only a run that never finished an epoch (nothing in --out but its
    config.yaml and temp files): what a job restarted before its first checkpoint leaves.
    """
    if not getattr(args, "auto_resume", False):
        return args.resume, args.overwrite
    out = Path(args.out)
    if (out / "checkpoint.pt").is_file():
        return True, False
    leftovers = list(out.iterdir()) if out.is_dir() else []
    unfinished = bool(leftovers) and all(p.name == "config.yaml" or p.name.endswith(".tmp") for p in leftovers)
    return False, unfinished


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """Config from (checkpoint's config) < --config YAML < flags."""
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None) is not None:
        import yaml

        path = Path(args.config)
        if not path.is_file():
            raise ConfigError(f"--config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"--config file {path} must hold a mapping of keys to values")
        values.update(data)
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return config_from_dict(values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="supcon",
        description="Supervised Contrastive Learning (Khosla et al. 2020): pretrain, probe, compare.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("pretrain", help="contrastive pretraining (--method supcon|simclr)")
    _add_run_flags(p, "runs/pretrain")
    _add_config_flags(p)

    p = sub.add_parser("linear", help="linear probe (or --finetune) on a pretrained encoder")
    p.add_argument("--checkpoint", type=Path, required=True, help="pretrain or CE checkpoint.pt")
    _add_run_flags(p, "runs/linear")
    _add_config_flags(p)

    p = sub.add_parser("train-ce", help="cross-entropy baseline trained end to end")
    _add_run_flags(p, "runs/ce")
    _add_config_flags(p)

    p = sub.add_parser("knn", help="kNN accuracy of a checkpoint's encoder")
    p.add_argument("--checkpoint", type=Path, required=True, help="pretrain or CE checkpoint.pt")
    _add_config_flags(p)

    p = sub.add_parser("run", help="SupCon + SimCLR pretraining with linear probes, CE baseline, table")
    _add_run_flags(p, "runs/run")
    p.add_argument("--methods", default="supcon,simclr,ce", help="comma-separated subset of supcon,simclr,ce")
    _add_config_flags(p)

    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text))
    return parser


def _checkpoint_config(path: Path) -> dict[str, Any]:
    from supcon.train.checkpoint import load_checkpoint

    return known_config_values(load_checkpoint(path, kind=("pretrain", "ce")).get("config", {}))


def _print_metrics(title: str, metrics: dict[str, Any]) -> None:
    from supcon import distributed

    if distributed.rank() != 0:  # under torchrun, rank 0 reports
        return
    keys = [k for k in ("loss", "test_acc", "online_probe_acc", "knn_acc", "total_seconds") if k in metrics]
    print(f"{title}: " + ", ".join(f"{k}={metrics[k]:.4g}" for k in keys))


def cmd_pretrain(args: argparse.Namespace) -> int:
    from supcon.train.engine import pretrain

    cfg = config_from_args(args)
    resume, overwrite = _resume_overwrite(args)
    metrics = pretrain(cfg, args.out, resume=resume, overwrite=overwrite)
    _print_metrics(f"pretrain ({cfg.method}) -> {args.out / 'checkpoint.pt'}", metrics)
    return 0


def cmd_linear(args: argparse.Namespace) -> int:
    from supcon.train.engine import train_linear

    cfg = config_from_args(args, base=_checkpoint_config(args.checkpoint))
    resume, overwrite = _resume_overwrite(args)
    metrics = train_linear(cfg, args.checkpoint, args.out, resume=resume, overwrite=overwrite)
    _print_metrics(f"{'fine-tune' if cfg.finetune else 'linear probe'} -> {args.out}", metrics)
    return 0


def cmd_train_ce(args: argparse.Namespace) -> int:
    from supcon.train.engine import train_ce

    cfg = config_from_args(args)
    resume, overwrite = _resume_overwrite(args)
    metrics = train_ce(cfg, args.out, resume=resume, overwrite=overwrite)
    _print_metrics(f"cross-entropy -> {args.out / 'checkpoint.pt'}", metrics)
    return 0


def cmd_knn(args: argparse.Namespace) -> int:
    from supcon.train.engine import encoder_from_checkpoint, knn_evaluate, load_data, setup_runtime

    cfg = config_from_args(args, base=_checkpoint_config(args.checkpoint))
    rt = setup_runtime(cfg)
    data = load_data(cfg)
    encoder, _ = encoder_from_checkpoint(args.checkpoint, cfg, channels=data.channels)
    acc = knn_evaluate(encoder.to(rt.device), data, rt, cfg)
    print(f"kNN (k={cfg.knn_k}) top-1 on {cfg.dataset} test split: {acc:.2f}%")
    return 0


def comparison_table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown table of a `supcon run`: one row per method."""
    lines = ["| method | linear-probe top-1 (%) | kNN top-1 (%) | train time (s) |",
             "|---|---|---|---|"]
    for method, r in results.items():
        probe = r.get("linear_acc")
        knn = r.get("knn_acc")
        lines.append(
            f"| {method} | {probe:.2f} | {knn:.2f} | {r.get('seconds', 0):.1f} |"
            if probe is not None and knn is not None
            else f"| {method} | {probe} | {knn} | {r.get('seconds', 0):.1f} |")
    return "\n".join(lines)


def _launched_as_rank_zero() -> bool:
    """Rank 0 of a torchrun launch (or no launcher), known before any process group exists."""
    return int(os.environ.get("RANK", "0")) == 0


def run_all(cfg: Config, out: Path, methods: Sequence[str], *, resume: bool = False,
            overwrite: bool = False) -> dict[str, dict[str, Any]]:
    """Pretrain + linear probe for SupCon and SimCLR, and the CE baseline, same budget each."""
    from supcon.train.engine import load_data, prepare_run_dir, pretrain, train_ce, train_linear

    unknown = set(methods) - {"supcon", "simclr", "ce"}
    if unknown:
        raise ConfigError(f"--methods has unknown entries {sorted(unknown)}; use supcon, simclr, ce")
    # Before any process group exists: torchrun's RANK says who owns the folder (rank 0 alone
    # deletes it under --overwrite); each stage below re-checks and synchronises its own run dir.
    is_main = _launched_as_rank_zero()
    if resume:
        if is_main:
            out.mkdir(parents=True, exist_ok=True)
    else:
        prepare_run_dir(out, resume=False, overwrite=overwrite, is_main=is_main)
    data = load_data(cfg)
    results: dict[str, dict[str, Any]] = {}
    # kNN accuracy and the summary come from rank 0 (the only rank that evaluates after training).
    for method in methods:
        t0 = time.perf_counter()
        if method == "ce":
            m = train_ce(cfg, out / "ce", resume=resume and (out / "ce" / "checkpoint.pt").exists(), data=data)
            # The CE baseline's own classifier is its "probe": same test split, same metric.
            results["ce"] = {"linear_acc": m["test_acc"], "knn_acc": m.get("knn_acc"),
                             "seconds": time.perf_counter() - t0}
            continue
        mcfg = dataclasses.replace(cfg, method=method)
        pre_dir = out / method
        m = pretrain(mcfg, pre_dir, resume=resume and (pre_dir / "checkpoint.pt").exists(), data=data)
        lin = train_linear(mcfg, pre_dir / "checkpoint.pt", pre_dir / "linear",
                           resume=resume and (pre_dir / "linear" / "checkpoint.pt").exists(), data=data)
        results[method] = {"linear_acc": lin["test_acc"], "knn_acc": m.get("knn_acc"),
                           "seconds": time.perf_counter() - t0}
    if is_main:
        (out / "summary.json").write_text(json.dumps(results, indent=2))
        (out / "summary.md").write_text(comparison_table(results) + "\n")
    return results


def cmd_run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    # Each stage of `run` already resumes only where its checkpoint exists.
    resume = args.resume or (args.auto_resume and args.out.is_dir())
    results = run_all(cfg, args.out, methods, resume=resume, overwrite=args.overwrite)
    if not _launched_as_rank_zero():
        return 0
    print(f"\nResults on {cfg.dataset} ({cfg.arch}, {cfg.epochs} epochs, batch {cfg.batch_size}):")
    print(comparison_table(results))
    print(f"\nrun directories, plots and summary.md in {args.out}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "pretrain": cmd_pretrain,
    "linear": cmd_linear,
    "train-ce": cmd_train_ce,
    "knn": cmd_knn,
    "run": cmd_run,
}


def _register_optional_commands() -> None:
    """Commands that live in their own modules register themselves into COMMANDS on import."""
    for module in ("supcon.evaluate", "supcon.report"):
        try:
            __import__(module)
        except ImportError as exc:  # a missing optional module must not break the core commands
            log.debug("optional commands from %s unavailable: %s", module, exc)


def main(argv: Sequence[str] | None = None) -> int:
    _register_optional_commands()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    handler = HANDLERS.get(args.command) or COMMANDS[args.command][1]
    from supcon.data import DatasetError
    from supcon.train.checkpoint import CheckpointError
    from supcon.train.engine import RunDirError

    from supcon import distributed

    try:
        code = handler(args)
    except (ConfigError, DatasetError, CheckpointError, RunDirError, FloatingPointError) as exc:
        print(f"supcon {args.command}: error: {exc}", file=sys.stderr)
        return 2
    distributed.shutdown()  # under torchrun: wait for rank 0's final evaluation, then leave
    return code


if __name__ == "__main__":
    sys.exit(main())
