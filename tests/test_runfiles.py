"""Run folders: file names, atomic writers, and the rules for starting a run in a folder."""

from __future__ import annotations

import csv
import errno
import json
import os

import pytest

from supcon import runfiles
from supcon.runfiles import (RunDirError, holds_run, prepare_run_dir, write_atomic, write_csv_atomic,
                             write_json_atomic, write_text_atomic)
from tiny_runs import fail_writability_probe


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
    # Nothing of the old run is left: only the marker of the new one.
    assert replaced.is_dir() and [p.name for p in replaced.iterdir()] == [runfiles.RUN_MARKER]
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


# ---------------------------------------------------------------------------------------------
# --overwrite deletes only what supcon wrote
# ---------------------------------------------------------------------------------------------


def _names(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _training_run(folder, kind="pretrain"):
    """A finished-looking run folder: marker, run files and a temp file a killed write left."""
    prepare_run_dir(folder, kind=kind)
    for name in (runfiles.CHECKPOINT_NAME, runfiles.CONFIG_YAML, runfiles.METRICS_CSV, runfiles.LOSS_PLOT):
        (folder / name).write_text("x")
    (folder / ".checkpoint.pt.k1l2.tmp").write_text("half")
    return folder


def test_overwrite_refuses_a_folder_that_is_not_a_supcon_run(tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    (thesis / "config.yaml").write_text("a: 1\n")  # a config.yaml beside other files is no run
    with pytest.raises(RunDirError, match=f"--overwrite refuses {thesis}: it is not a supcon run folder"):
        prepare_run_dir(thesis, overwrite=True)
    assert _names(thesis) == ["chapter1.tex", "config.yaml"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_run_dir(empty, overwrite=True) == empty  # an empty folder is fine


def test_overwrite_deletes_the_run_files_and_keeps_everything_else(tmp_path):
    run = _training_run(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    (run / "extra").mkdir()
    (run / "extra" / "metrics.csv").write_text("not a run: no config.yaml")
    prepare_run_dir(run, overwrite=True, kind="pretrain")
    assert _names(run) == [runfiles.RUN_MARKER, "extra", "extra/metrics.csv", "notes.txt"]


@pytest.mark.parametrize("files, kind", [
    (("config.yaml", "metrics.csv"), "training"), (("config.yaml", "checkpoint.pt"), "training"),
    (("summary.json",), "run"), (("sweep.csv",), "sweep"),
    (("config.yaml", ".checkpoint.pt.k2.tmp"), "training"),  # killed before its first checkpoint
])
def test_folders_written_before_markers_still_count_as_runs(files, kind, tmp_path):
    for name in files:
        (tmp_path / name).write_text("x")
    assert runfiles.run_kind(tmp_path) == kind
    prepare_run_dir(tmp_path, overwrite=True)
    assert _names(tmp_path) == [runfiles.RUN_MARKER]


@pytest.mark.parametrize("where", ["inside", "equal", "symlinked"])
def test_overwrite_refuses_an_out_that_is_or_holds_an_input(where, tmp_path):
    run = _training_run(tmp_path / "run")
    data = run / "data.npz"
    data.write_text("the dataset")
    target = {"inside": data, "equal": run, "symlinked": tmp_path / "link" / "data.npz"}[where]
    if where == "symlinked":
        (tmp_path / "link").symlink_to(run)
    before = _names(run)
    with pytest.raises(RunDirError, match=f"--out {run} (is|holds) .*an input of this run"):
        prepare_run_dir(run, overwrite=True, inputs=[target])
    assert _names(run) == before


def test_a_nested_run_of_its_own_is_refused_a_part_is_replaced(tmp_path):
    pre = _training_run(tmp_path / "pre")
    _training_run(pre / runfiles.LINEAR_DIR, kind="linear")
    before = _names(pre)
    with pytest.raises(RunDirError, match=f"{pre / 'linear'} is a supcon linear run of its own"):
        prepare_run_dir(pre, overwrite=True, kind="pretrain")
    assert _names(pre) == before
    # The pipeline owns its probe: it names it as a part.
    runfiles.remove_run(pre, parts=[runfiles.LINEAR_DIR])
    assert _names(pre) == [runfiles.RUN_MARKER]


def test_a_composite_folder_replaces_the_runs_its_marker_records(tmp_path):
    top = tmp_path / "top"
    prepare_run_dir(top, kind="run")  # no parts given here
    with runfiles.claim_run_dir(top, "run", resume=True, parts=["*", "*/linear"]):
        pass
    _training_run(top / "supcon")
    _training_run(top / "supcon" / "linear", kind="linear")
    (top / "summary.json").write_text("{}")
    (top / "README.txt").write_text("mine")
    (top / "plain").mkdir()
    (top / "plain" / "keep.txt").write_text("mine")
    prepare_run_dir(top, overwrite=True, kind="run")  # the parts come from the marker
    assert _names(top) == [runfiles.RUN_MARKER, "README.txt", "plain", "plain/keep.txt"]


# ---------------------------------------------------------------------------------------------
# The lock, temp files, writability
# ---------------------------------------------------------------------------------------------


def test_a_held_run_folder_is_refused_before_anything_is_deleted(tmp_path):
    run = _training_run(tmp_path / "run")
    with runfiles.claim_run_dir(run, "pretrain", resume=True) as claimed:  # a live run
        assert (claimed / runfiles.RUN_LOCK).read_text().strip() == str(os.getpid())
        before = _names(run)
        for kw in ({}, {"overwrite": True}, {"resume": True}):  # the live run is named first
            with pytest.raises(RunDirError, match=f"another supcon run \\(pid {os.getpid()}\\) is using {run}"):
                prepare_run_dir(run, **kw)
        assert _names(run) == before
    assert not (run / runfiles.RUN_LOCK).exists()  # released and removed at the end
    assert prepare_run_dir(run, resume=True) == run  # free again


def test_overwrite_checks_the_locks_of_nested_runs_first(tmp_path):
    top = tmp_path / "top"
    prepare_run_dir(top, kind="run")
    probe = _training_run(top / "supcon" / "linear", kind="linear")
    _training_run(top / "supcon")
    with runfiles.claim_run_dir(probe, "linear", resume=True):  # a probe running in there
        before = _names(top)
        with pytest.raises(RunDirError, match=f"another supcon run .* is using {probe}"):
            runfiles.remove_run(top, parts=["*", "*/linear"])
        assert _names(top) == before


def test_stale_temp_files_are_removed_at_the_start_and_the_end(tmp_path):
    run = _training_run(tmp_path / "run")
    (run / ".metrics.csv.x9.tmp").write_text("half")
    (run / "user.tmp").write_text("not ours")
    with runfiles.claim_run_dir(run, "pretrain", resume=True):
        assert _leftovers(run) == ["user.tmp"]
        (run / ".checkpoint.pt.zz.tmp").write_text("a write killed mid-run")
    assert _leftovers(run) == ["user.tmp"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES])
def test_an_unwritable_folder_fails_before_the_run(code, tmp_path, monkeypatch):
    fail_writability_probe(monkeypatch, code)
    with pytest.raises(RunDirError, match=f"cannot write to run directory {tmp_path / 'run'}: {os.strerror(code)}"):
        with runfiles.claim_run_dir(tmp_path / "run", "pretrain"):
            pytest.fail("the block ran")


def test_a_full_disk_fails_the_probe(tmp_path, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runfiles.os, "fsync", fsync)
    with pytest.raises(RunDirError, match="No space left on device"):
        prepare_run_dir(tmp_path / "run")
    assert not [p for p in (tmp_path / "run").iterdir()]  # the probe file is gone too


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_fails_before_the_run(tmp_path):
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o555)
    try:
        with pytest.raises(RunDirError, match="cannot write to run directory"):
            prepare_run_dir(run)
    finally:
        run.chmod(0o755)


def test_an_out_that_is_a_file_or_of_another_kind(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        prepare_run_dir(file)
    prepare_run_dir(tmp_path / "sweep", kind="sweep")
    with pytest.raises(RunDirError, match="holds a supcon sweep folder, not a pretrain run"):
        prepare_run_dir(tmp_path / "sweep", kind="pretrain")
