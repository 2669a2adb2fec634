"""An exclusive lock on a file for the life of a process (``fcntl.flock``); the file names its holder's pid.

The kernel releases a flock when its process dies, so the file a killed process leaves behind locks
nothing: the next holder takes it. A flock belongs to an open file, so a second holder in the same
process is refused as well. Without ``fcntl`` (Windows) nothing is locked.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["PidLock", "LockHeld"]

#: What flock(LOCK_NB) fails with when another holder has the lock.
_BUSY = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES)


class LockHeld(Exception):
    """Another holder has the lock; ``pid`` is the pid its file names ("unknown" before it wrote it)."""

    def __init__(self, path: Path, pid: str) -> None:
        super().__init__(f"{path} is locked by pid {pid}")
        self.path = path
        self.pid = pid


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


class PidLock:
    """``with PidLock(path):`` holds an exclusive flock on ``path`` (created, holding this pid) and
    removes the file when it ends.

    Raises (on entry):
        LockHeld: another holder, in any process, has the lock.
        OSError: the file cannot be created or locked.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> PidLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        if fcntl is None or self._fd is not None:
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                held = LockHeld(self.path, _holder(fd)) if exc.errno in _BUSY else None
                os.close(fd)
                if held is not None:
                    raise held from None
                raise
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder that just finished removed the file we opened: lock the one there now
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: whoever opens it now gets a new file
        except OSError:
            pass
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def check_free(self) -> None:
        """Raises :class:`LockHeld` when someone holds the lock; takes nothing, creates nothing."""
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:  # no lock file (or none readable): nobody to name
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _BUSY:
                raise LockHeld(self.path, _holder(fd)) from None
        finally:
            os.close(fd)  # also drops the lock if this took it
