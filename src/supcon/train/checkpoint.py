"""Checkpoints: one dict, written atomically, loaded with ``weights_only=True``.

Layout::

    {"format": "supcon", "version": 1, "kind": "pretrain" | "ce" | "linear",
     "epoch": int (epochs completed), "config": dict, "signature": dict,
     "model": state_dict, "optimizer": state_dict, "extra": {...},
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]},
     "normalization": {"mean": [...], "std": [...]}, "num_classes": int, "classes": [...]}
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng",
           "write_text_atomic", "write_csv_atomic", "FORMAT", "VERSION"]

FORMAT = "supcon"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a supcon checkpoint, or one that does not fit the model asked for."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Writes ``state`` to ``path`` atomically: a temp file in the same folder, then rename.

    A crash (or a killed rank) mid-write leaves the previous checkpoint intact and at most a
    stray ``.tmp`` file, never a truncated checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": VERSION, **state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    kind: str | tuple[str, ...] | None = None) -> dict[str, Any]:
    """Loads a supcon checkpoint safely; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, foreign formats
        # torch's weights-only message runs to many lines and suggests weights_only=False: keep
        # only its gist.
        detail = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        if "Weights only load failed" in detail:
            detail = "it holds objects a weights-only load refuses, or is not a torch file"
        raise CheckpointError(
            f"{path} is not a readable supcon checkpoint ({exc.__class__.__name__}: {detail[:200]})"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a supcon checkpoint (no 'format: supcon' entry)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}, expected {VERSION}")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else kind
        if state.get("kind") not in kinds:
            raise CheckpointError(f"{path} is a {state.get('kind')!r} checkpoint, expected one of {kinds}")
    return state


def capture_rng() -> dict[str, Any]:
    """The global RNG states (torch CPU, and CUDA when present)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Restores :func:`capture_rng`'s states; they may have been loaded onto any device."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temp file and a rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv_atomic(path: str | Path, rows: Sequence[Mapping[str, Any]],
                     fieldnames: Sequence[str] | None = None) -> None:
    """A CSV of ``rows`` (columns: ``fieldnames``, or every key in order of appearance), atomically."""
    keys = list(fieldnames) if fieldnames is not None else []
    if fieldnames is None:
        for row in rows:
            keys.extend(k for k in row if k not in keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())
