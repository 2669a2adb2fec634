"""Building arguments: every Config field as a flag, run-folder flags, and Config from parsed flags."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from supcon.checkpoint import load_checkpoint
from supcon.config import FIELD_HELP, Config, config_from_dict, known_config_values, read_yaml_mapping
from supcon.runfiles import CHECKPOINT_NAME, CONFIG_YAML

__all__ = ["add_config_flags", "add_run_flags", "resume_overwrite", "config_from_args", "checkpoint_config_values"]


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """``--config FILE.yaml`` and one flag per :class:`Config` field (``--batch-size`` sets ``batch_size``)."""
    group = parser.add_argument_group("configuration (defaults < --config YAML < flags)")
    group.add_argument("--config", type=Path, default=None, help="YAML file of config keys")
    for f in dataclasses.fields(Config):
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        help_text = f"{FIELD_HELP.get(f.name, '')} (default: {default})".replace("%", "%%")  # argparse formats help
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)
        else:
            group.add_argument(flag, dest=f.name, default=None, metavar=f.name.upper(), help=help_text)


def add_run_flags(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out`` and the mutually exclusive ``--resume`` / ``--overwrite`` / ``--auto-resume``."""
    parser.add_argument("--out", type=Path, default=Path(default_out), help=f"run directory (default: {default_out})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    mode.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    mode.add_argument("--auto-resume", action="store_true",
                      help="resume when --out holds a checkpoint, else start a new run there "
                           "(for torchrun --max-restarts and preemptible jobs)")


def resume_overwrite(args: argparse.Namespace) -> tuple[bool, bool]:
    """(resume, overwrite) from --resume / --overwrite / --auto-resume.

    --auto-resume continues from ``--out/checkpoint.pt`` when it exists. Without one it starts
    afresh, replacing only a run that never finished an epoch (nothing in --out but its
    config.yaml and temp files): what a job restarted before its first checkpoint leaves.
    """
    if not getattr(args, "auto_resume", False):
        return args.resume, args.overwrite
    out = Path(args.out)
    if (out / CHECKPOINT_NAME).is_file():
        return True, False
    leftovers = list(out.iterdir()) if out.is_dir() else []
    unfinished = bool(leftovers) and all(p.name == CONFIG_YAML or p.name.endswith(".tmp") for p in leftovers)
    return False, unfinished


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """Config from (a checkpoint's config) < --config YAML < flags."""
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config", None) is not None:
        values.update(read_yaml_mapping(args.config, "--config file"))
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return config_from_dict(values)


def checkpoint_config_values(path: Path) -> dict[str, Any]:
    """The config values a pretrain or CE checkpoint was trained with (keys this version knows)."""
    return known_config_values(load_checkpoint(path, kind=("pretrain", "ce")).get("config", {}))
