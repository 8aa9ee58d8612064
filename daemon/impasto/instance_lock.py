"""One daemon per data folder and per runtime folder: an OS file lock held for the daemon's life.

The lock (fcntl on POSIX, msvcrt on Windows) is released by the OS when the process exits,
however it exits, so a crashed daemon never blocks the next one and two daemons started at
the same instant cannot both win.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

LOCK_NAME = "impasto.lock"
_PID_OFFSET = 16  # the pid is written after the locked byte (Windows locks are mandatory)


class InstanceLock:
    """An exclusive, non-blocking lock on ``folder/impasto.lock`` that records its holder's pid."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False when another live process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            return False
        os.lseek(fd, _PID_OFFSET, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".ljust(16).encode())
        self._fd = fd
        return True

    def holder(self) -> int | None:
        """The pid written by the process that holds (or last held) the lock."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(_PID_OFFSET)
                text = fh.read(16).decode("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


if sys.platform == "win32":
    import msvcrt

    def _lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
