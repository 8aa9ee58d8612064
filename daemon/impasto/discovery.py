"""The discovery file: how clients find a running daemon (pid, URL, socket, token, version)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class DaemonInfo:
    """What a running daemon publishes about itself."""

    pid: int
    url: str
    socket: str | None
    token: str
    version: str


def write(path: Path, info: DaemonInfo) -> None:
    """Write atomically, readable by the owner only (it holds the token)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(asdict(info), fh)
    if sys.platform != "win32":
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read(path: Path) -> DaemonInfo | None:
    try:
        data = json.loads(path.read_text())
        return DaemonInfo(**data)
    except (OSError, ValueError, TypeError):
        return None


def remove(path: Path, pid: int | None = None) -> None:
    """Remove the file, but only our own when ``pid`` is given."""
    if pid is not None:
        info = read(path)
        if info is not None and info.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return True  # no cheap check; the health probe decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
