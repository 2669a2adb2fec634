"""The on-disk cache of decoded datasets: named numpy arrays in one ``.npz`` file per entry.

Where: ``$SUPCON_CACHE_DIR`` when set (``SUPCON_CACHE_DIR=off`` turns the cache off), else
``$XDG_CACHE_HOME/supcon``, else ``~/.cache/supcon``. Deleting the folder is always safe.

An entry is an uncompressed ``.npz`` holding the arrays plus ``__meta__``, a JSON string with a magic
word, :data:`CACHE_FORMAT_VERSION`, the entry's key (the fingerprint of what it was built from), the
CRC-32 of every array and a few caller facts (``info``). Only plain dtypes are stored and files are read
with ``allow_pickle=False``: a cache file can never run code. Reading checks all of that; an entry that
is stale (other key), unreadable or corrupt is reported by one warning and treated as missing, so the
caller rebuilds and overwrites it. Writing goes to a temporary file in the same folder that is then
renamed over the entry (``os.replace``, atomic): readers see the old entry or the new one, never a
partial file, and two writers of the same entry at once are safe (the later rename replaces an
identical file). A failed write leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Environment variable naming the cache folder; the value ``off`` disables the cache.
CACHE_DIR_ENV = "SUPCON_CACHE_DIR"
#: Bumped whenever the layout of entries changes; entries of other versions are rebuilt.
CACHE_FORMAT_VERSION = 1

_MAGIC = "supcon-array-cache"
_META = "__meta__"
# dtype kinds an entry may hold: bool, signed and unsigned ints, floats, unicode strings (never objects).
_PLAIN_KINDS = frozenset("biufU")
# Temporary files of writers that died (killed mid-write) are removed once they are this old.
_ORPHAN_AGE_S = 3600.0


@dataclass(frozen=True)
class CacheEntry:
    """A valid entry: its arrays by name and the ``info`` it was written with."""

    arrays: dict[str, np.ndarray]
    info: dict[str, Any]


def cache_root() -> Path | None:
    """The cache folder (see the module docstring), or ``None`` when ``SUPCON_CACHE_DIR=off``."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "supcon"


def read_entry(path: Path, key: str) -> CacheEntry | None:
    """The entry at ``path`` if it exists, is intact and was built for ``key``; else ``None``.

    A missing file is silently ``None``; a stale or damaged one logs one warning saying why.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            problem, entry = _checked_entry(stored, key)
    except Exception as err:  # zipfile, numpy and json raise many types on damaged files
        problem, entry = f"unreadable ({type(err).__name__}: {err})", None
    if problem is not None:
        discard_warning(path, problem)
    return entry


def discard_warning(path: Path, problem: str) -> None:
    """Log the one warning for an entry that is ignored (and will be rebuilt) because of ``problem``."""
    logger.warning("ignoring cache file %s: %s; rebuilding it", path, problem)


def write_entry(path: Path, key: str, arrays: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> None:
    """Write ``arrays`` (plain dtypes) and JSON-able ``info`` as the entry for ``key`` at ``path``, atomically.

    Raises:
        OSError: the folder cannot be created or written (the caller decides whether that matters).
        ValueError: an array of a dtype an entry may not hold (objects), or the reserved name.
    """
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if name == _META or a.dtype.kind not in _PLAIN_KINDS:
            raise ValueError(f"cache entry array {name!r} of dtype {a.dtype} cannot be stored")
    meta = {
        "magic": _MAGIC,
        "version": CACHE_FORMAT_VERSION,
        "key": key,
        "crc32": {name: zlib.crc32(a) for name, a in arrays.items()},
        "info": dict(info),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **{_META: np.array(json.dumps(meta))}, **arrays)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _checked_entry(stored: Any, key: str) -> tuple[str | None, CacheEntry | None]:
    """``(problem, None)`` or ``(None, entry)`` for an open ``.npz``; arrays are read only if the key matches."""
    if _META not in stored.files:
        return "not a supcon cache file (no metadata)", None
    meta = json.loads(str(stored[_META][()]))
    if not isinstance(meta, dict) or meta.get("magic") != _MAGIC:
        return "not a supcon cache file (wrong magic)", None
    if meta.get("version") != CACHE_FORMAT_VERSION:
        return f"cache format {meta.get('version')!r}, this version reads {CACHE_FORMAT_VERSION}", None
    if meta.get("key") != key:
        return "stale (built from other files or settings)", None
    expected = meta.get("crc32")
    names = [n for n in stored.files if n != _META]
    if not isinstance(expected, dict) or sorted(expected) != sorted(names):
        return "array list does not match its metadata", None
    arrays = {}
    for name in names:
        a = stored[name]
        if a.dtype.kind not in _PLAIN_KINDS:
            return f"array {name!r} has dtype {a.dtype}", None
        if zlib.crc32(np.ascontiguousarray(a)) != expected[name]:
            return f"array {name!r} fails its CRC-32 check", None
        arrays[name] = a
    info = meta.get("info")
    return None, CacheEntry(arrays, info if isinstance(info, dict) else {})


def _remove_orphans(path: Path) -> None:
    """Delete temporary files of ``path`` left by writers killed mid-write (older than an hour)."""
    now = time.time()
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if now - orphan.stat().st_mtime > _ORPHAN_AGE_S:
                orphan.unlink()
