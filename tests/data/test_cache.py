"""Tests for supcon.data.cache: where the cache lives, atomic writes, validated reads, no pickles."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from supcon.data import cache as cache_module
from supcon.data.cache import CACHE_DIR_ENV, cache_root, read_entry, write_entry

ARRAYS = {
    "images": np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4),
    "labels": np.array([1, 0], dtype=np.int64),
    "paths": np.array(["a/0.png", "b/ü.jpg"], dtype=str),
    "empty": np.array([], dtype=str),
}


def _assert_equal_arrays(found):
    assert set(found) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert found[name].dtype == array.dtype
        np.testing.assert_array_equal(found[name], array)


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    for off in ("off", "OFF", " off "):
        monkeypatch.setenv(CACHE_DIR_ENV, off)
        assert cache_root() is None
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "supcon"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "supcon"


def test_round_trip_and_stale_key(tmp_path, caplog):
    path = tmp_path / "sub" / "entry.npz"
    write_entry(path, "key-1", ARRAYS, {"resized": True})
    assert os.listdir(path.parent) == ["entry.npz"]  # no temporary file left
    entry = read_entry(path, "key-1")
    _assert_equal_arrays(entry.arrays)
    assert entry.info == {"resized": True}
    with caplog.at_level(logging.WARNING, logger="supcon.data.cache"):
        assert read_entry(path, "key-2") is None
        assert read_entry(tmp_path / "missing.npz", "key-1") is None  # missing: silent
    assert len(_warnings(caplog)) == 1 and "stale" in _warnings(caplog)[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "plain-npz", "pickle"])
def test_damaged_files_are_ignored_with_one_warning(tmp_path, caplog, damage):
    path = tmp_path / "entry.npz"
    write_entry(path, "k", ARRAYS, {})
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "flip":  # one bit inside the image data: only a checksum notices
        at = data.index(bytes(range(40, 56)))
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "plain-npz":
        np.savez(path, images=ARRAYS["images"])
    else:  # an object array needs a pickle to load; it must be refused, never unpickled
        with open(path, "wb") as file:
            np.savez(file, __meta__=np.array("{}"), images=np.array([{"a": 1}], dtype=object))
    with caplog.at_level(logging.WARNING, logger="supcon.data.cache"):
        assert read_entry(path, "k") is None
    assert len(_warnings(caplog)) == 1 and "rebuilding" in _warnings(caplog)[0]
    write_entry(path, "k", ARRAYS, {})
    _assert_equal_arrays(read_entry(path, "k").arrays)


def test_failed_write_leaves_nothing_and_keeps_the_old_entry(tmp_path, monkeypatch):
    path = tmp_path / "entry.npz"
    write_entry(path, "old", ARRAYS, {})

    def broken_savez(file, **arrays):
        file.write(b"half an entry")
        raise OSError("disk full")

    monkeypatch.setattr(cache_module.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        write_entry(path, "new", ARRAYS, {})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["entry.npz"]
    _assert_equal_arrays(read_entry(path, "old").arrays)
    with pytest.raises(ValueError, match="cannot be stored"):
        write_entry(path, "new", {"bad": np.array([object()], dtype=object)}, {})
    assert os.listdir(tmp_path) == ["entry.npz"]


def test_orphaned_temporary_files_are_removed(tmp_path):
    path = tmp_path / "entry.npz"
    old, fresh = tmp_path / ".entry.npz.abc.tmp", tmp_path / ".entry.npz.def.tmp"
    for orphan in (old, fresh):
        orphan.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    write_entry(path, "k", ARRAYS, {})
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == [fresh.name, "entry.npz"]
