"""Run folders: file names, atomic writers, and the rules for starting a run in a folder."""

from __future__ import annotations

import csv
import json

import pytest

from supcon import runfiles
from supcon.runfiles import (RunDirError, holds_run, prepare_run_dir, write_atomic, write_csv_atomic,
                             write_json_atomic, write_text_atomic)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_prepare_run_dir_rules(tmp_path):
    fresh = prepare_run_dir(tmp_path / "new")
    assert fresh.is_dir()
    (fresh / "metrics.csv").write_text("epoch,loss\n")
    with pytest.raises(RunDirError, match="already holds a run.*--resume.*--overwrite"):
        prepare_run_dir(fresh)
    with pytest.raises(RunDirError, match="--resume given but .*checkpoint.pt does not exist"):
        prepare_run_dir(fresh, resume=True)
    with pytest.raises(RunDirError, match="mutually exclusive"):
        prepare_run_dir(fresh, resume=True, overwrite=True)
    replaced = prepare_run_dir(fresh, overwrite=True)
    assert replaced.is_dir() and not any(replaced.iterdir())
    # A directory with unrelated files is not a run.
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("hi")
    assert prepare_run_dir(other) == other
    with pytest.raises(RunDirError, match="does not exist"):
        prepare_run_dir(tmp_path / "empty", resume=True)


def test_holds_run_looks_for_run_markers(tmp_path):
    assert not holds_run(tmp_path / "missing")
    assert not holds_run(tmp_path)
    (tmp_path / runfiles.CONFIG_YAML).write_text("seed: 0\n")
    assert holds_run(tmp_path)


def test_text_json_and_csv_writers_round_trip(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    write_json_atomic(tmp_path / "b.json", {"z": 1, "a": [1, 2]})
    assert list(json.loads((tmp_path / "b.json").read_text())) == ["a", "z"]
    write_json_atomic(tmp_path / "c.json", {"z": 1, "a": 2}, sort_keys=False)
    assert list(json.loads((tmp_path / "c.json").read_text())) == ["z", "a"]
    write_csv_atomic(tmp_path / "d.csv", [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "acc": 90.0}])
    with (tmp_path / "d.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"epoch": "1", "loss": "2.5", "acc": ""}, {"epoch": "2", "loss": "", "acc": "90.0"}]
    write_csv_atomic(tmp_path / "e.csv", [{"a": 1, "b": 2}], ["b"])
    assert (tmp_path / "e.csv").read_text().splitlines() == ["b", "2"]
    assert _leftovers(tmp_path) == []


def test_a_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "f.txt"
    write_text_atomic(target, "old")

    def broken(handle):
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, broken, fsync=True)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []
