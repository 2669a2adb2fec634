"""The process-lifetime file lock (supcon.pidlock): exclusive, names its holder, gone when released."""

from __future__ import annotations

import os

import pytest

from supcon.pidlock import LockHeld, PidLock


def test_the_lock_is_exclusive_names_its_holder_and_is_removed(tmp_path):
    path = tmp_path / "lock"
    with PidLock(path):
        assert path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(LockHeld) as held:
            PidLock(path).acquire()  # a second holder, even in this process
        assert held.value.pid == str(os.getpid())
        with pytest.raises(LockHeld):
            PidLock(path).check_free()
    assert not path.exists()
    PidLock(path).check_free()  # no file: free, and nothing created
    assert not path.exists()


def test_a_leftover_file_locks_nothing(tmp_path):
    path = tmp_path / "lock"
    path.write_text("999999\n")  # what a killed holder leaves
    PidLock(path).check_free()
    with PidLock(path):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()
