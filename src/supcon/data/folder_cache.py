"""Cache entries of folder datasets: a decoded part of ``folder:DIR`` stored with :mod:`supcon.data.cache`.

One entry per dataset root, part (``train``, ``test`` or ``all``) and ``image_size``, named after the
resolved root. Its key (:func:`folder_fingerprint`) covers the relative path, class, size and
modification time of every image file of the dataset (all parts: mode and size depend on all of them),
the settings, the decode rules and Pillow's version, so any change to the files rebuilds it. The entry
holds ``images (M, C, S, S)`` uint8, ``labels``, ``rows`` (index in the part's file list), ``paths``
(relative to the root), ``classes`` and the unreadable files found (``bad_paths``, ``bad_messages``);
:func:`cached_part` checks all of them against the folder's current listing before trusting them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from supcon.data.cache import CACHE_FORMAT_VERSION, CacheEntry, write_entry
from supcon.data.folder_files import FolderLayout

logger = logging.getLogger(__name__)

# Bump when the decode rules (mode, bit depth, size, resize, crop) change, so cached folders are decoded
# again. 2: images of more than 8 bits are scaled by their bit depth instead of clipped at 255.
_DECODE_RULES_VERSION = 2
_ENTRY_ARRAYS = frozenset({"images", "labels", "rows", "paths", "classes", "bad_paths", "bad_messages"})


@dataclass(frozen=True)
class DecodedPart:
    """The decoded images of one part: what the cache stores.

    Attributes:
        images: ``(M, C, S, S)`` uint8, the readable files among those asked for, in listing order.
        rows: ``(M,)`` int64, each image's index in the part's file list.
        bad: ``(relative path, message)`` of every unreadable file found, in any part.
        resized: the size rule changed some image (only when ``image_size`` was not given).
    """

    images: np.ndarray
    rows: np.ndarray
    bad: list[tuple[str, str]]
    resized: bool


def entry_name(layout: FolderLayout, part: str, image_size: int | None) -> str:
    """File name of the cache entry of ``part`` of this folder at ``image_size``."""
    root = layout.root.resolve()
    ident = hashlib.sha256(f"{root}\0{part}\0{image_size}".encode("utf-8", "surrogateescape")).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", root.name)[:40] or "root"
    return f"{readable}-{part}-{image_size or 'native'}-{ident[:16]}.npz"


def folder_fingerprint(layout: FolderLayout, image_size: int | None) -> str:
    """The cache key of every part: each file (path, class, size, mtime), the settings, the decode rules."""
    digest = hashlib.sha256()
    settings = {
        "cache_format": CACHE_FORMAT_VERSION,
        "decode_rules": _DECODE_RULES_VERSION,
        "pillow": Image.__version__,
        "image_size": image_size,
        "classes": layout.classes,
    }
    digest.update(json.dumps(settings).encode())
    for name, files in layout.parts.items():
        digest.update(json.dumps([name, len(files)]).encode())
        digest.update("\0".join(files.rel).encode("utf-8", "surrogateescape"))  # no file name holds NUL
        for column in (files.labels, files.size, files.mtime_ns):
            digest.update(column.astype("<i8").tobytes())
    return digest.hexdigest()


def store_part(path: Path, key: str, layout: FolderLayout, part: str, decoded: DecodedPart) -> None:
    """Write ``decoded`` as the cache entry; a failure to write is a warning, never an error."""
    files = layout.parts[part]
    rel = np.array(files.rel, dtype=str)
    arrays = {
        "images": decoded.images,
        "labels": files.labels[decoded.rows],
        "rows": decoded.rows,
        "paths": rel[decoded.rows],
        "classes": np.array(layout.classes, dtype=str),
        "bad_paths": np.array([p for p, _ in decoded.bad], dtype=str),
        "bad_messages": np.array([m for _, m in decoded.bad], dtype=str),
    }
    try:
        write_entry(path, key, arrays, {"resized": decoded.resized, "root": str(layout.root), "part": part})
    except (OSError, ValueError) as err:
        logger.warning("could not write cache file %s: %s (the dataset still loads, uncached)", path, err)


def cached_part(
    entry: CacheEntry, layout: FolderLayout, part: str, image_size: int | None
) -> tuple[DecodedPart | None, str]:
    """The entry as :class:`DecodedPart` if it fits the folder's current files, else ``(None, why not)``."""
    a = entry.arrays
    if set(a) != _ENTRY_ARRAYS:
        return None, f"holds arrays {sorted(a)}, expected {sorted(_ENTRY_ARRAYS)}"
    images, rows = a["images"], a["rows"]
    n, files = len(images), layout.parts[part]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        return None, f"images have dtype {images.dtype} and shape {images.shape}, expected (N, 1|3, S, S) uint8"
    if images.shape[2] != images.shape[3] or (image_size is not None and images.shape[2] != image_size):
        return None, f"images are {images.shape[2]}x{images.shape[3]}, expected square of side {image_size}"
    if rows.dtype != np.int64 or any(a[k].shape != (n,) for k in ("rows", "labels", "paths")):
        return None, f"rows, labels and paths do not all hold {n} entries"
    if n and (rows[0] < 0 or rows[-1] >= len(files) or np.any(np.diff(rows) <= 0)):
        return None, "row indices are out of order or out of range"
    rel = np.array(files.rel, dtype=str)
    bad = list(zip(a["bad_paths"].tolist(), a["bad_messages"].tolist()))
    missing = set(rel[np.setdiff1d(np.arange(len(files)), rows)].tolist()) if n < len(files) else set()
    if not (np.array_equal(a["paths"], rel[rows]) and missing <= {p for p, _ in bad}):
        return None, "its file list does not match the folder"
    if not np.array_equal(a["labels"], files.labels[rows]) or a["classes"].tolist() != layout.classes:
        return None, "its labels or classes do not match the folder"
    return DecodedPart(images, rows, bad, bool(entry.info.get("resized", False))), ""
