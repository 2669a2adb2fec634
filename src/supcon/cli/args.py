"""Building arguments: every Config field as a flag, run-folder flags, and Config from parsed flags."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from supcon.checkpoint import load_checkpoint
from supcon.config import (FIELD_HELP, Config, ConfigError, coerce, config_from_dict, known_config_values,
                           read_yaml_mapping)
from supcon.runfiles import CHECKPOINT_NAME, CONFIG_YAML, RUN_LOCK, RUN_MARKER, is_own_temp_file

__all__ = ["add_config_flags", "add_run_flags", "resume_overwrite", "config_from_args", "checkpoint_config_values",
           "explicit_config_values", "config_from_checkpoint", "SIGNATURE_KEYS"]

#: Config keys a checkpoint's model signature decides for the commands that read it (linear, knn).
SIGNATURE_KEYS: tuple[str, ...] = ("arch", "stem", "width", "head", "feat_dim")


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
    mode.add_argument("--overwrite", action="store_true", help="replace a run already in --out (deletes only supcon's "
                      "own files; refuses a folder that is not a supcon run or that holds an input)")
    mode.add_argument("--auto-resume", action="store_true",
                      help="resume when --out holds a checkpoint, else start a new run there "
                           "(for torchrun --max-restarts and preemptible jobs)")


def resume_overwrite(args: argparse.Namespace) -> tuple[bool, bool]:
    """(resume, overwrite) from --resume / --overwrite / --auto-resume.

    --auto-resume continues from ``--out/checkpoint.pt`` when it exists. Without one it starts
    afresh, replacing only a run that never finished an epoch (nothing in --out but its
    config.yaml, marker, lock and temp files): what a job restarted before its first checkpoint leaves.
    """
    if not getattr(args, "auto_resume", False):
        return args.resume, args.overwrite
    out = Path(args.out)
    if (out / CHECKPOINT_NAME).is_file():
        return True, False
    leftovers = [p.name for p in out.iterdir()] if out.is_dir() else []
    unfinished = bool(leftovers) and all(
        name in (CONFIG_YAML, RUN_MARKER, RUN_LOCK) or is_own_temp_file(name) for name in leftovers)
    return False, unfinished


def explicit_config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config values the user gave: the --config YAML, then the flags (uncoerced)."""
    values: dict[str, Any] = {}
    if getattr(args, "config", None) is not None:
        values.update(read_yaml_mapping(args.config, "--config file"))
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return values


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """Config from (a checkpoint's config) < --config YAML < flags."""
    return config_from_dict({**(base or {}), **explicit_config_values(args)})


def checkpoint_config_values(path: Path) -> dict[str, Any]:
    """The config values a pretrain or CE checkpoint was trained with (keys this version knows)."""
    return known_config_values(load_checkpoint(path, kind=("pretrain", "ce")).get("config", {}))


def config_from_checkpoint(args: argparse.Namespace) -> Config:
    """Config of a command that reads ``args.checkpoint``: its config < --config YAML < flags, with
    the model (:data:`SIGNATURE_KEYS`) as the checkpoint's signature says.

    Raises:
        ConfigError: a --config or flag value of a signature key that contradicts the checkpoint.
    """
    state = load_checkpoint(args.checkpoint, kind=("pretrain", "ce"))
    base = known_config_values(state.get("config", {}))
    signature = state.get("signature", {})
    explicit = explicit_config_values(args)
    conflicts = []
    for key in SIGNATURE_KEYS:
        if signature.get(key) is None:
            continue
        base[key] = signature[key]
        if key in explicit and coerce(key, explicit[key]) != signature[key]:
            conflicts.append(f"--{key.replace('_', '-')} {explicit[key]} (the checkpoint's: {signature[key]})")
    if conflicts:
        raise ConfigError(f"{args.checkpoint} decides the model, and {', '.join(conflicts)} contradicts it: "
                          "drop the flag (or the --config key), or pass a checkpoint of that model")
    return config_from_dict({**base, **explicit})
