"""The daemon's log files: ``daemon.log`` (API, supervisor, installs) and ``worker-N.log``.

Both rotate: ``daemon.log`` when it reaches ``MAX_BYTES``, a worker's log when the worker
starts and its file is over ``MAX_BYTES`` (its stderr goes to the file, so it cannot be
rotated while the worker writes to it). ``BACKUPS`` older files are kept as ``NAME.1``...
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from pathlib import Path

MAX_BYTES = 10 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log every request at INFO; the daemon's log keeps their warnings only.
QUIET = ("httpx", "httpcore", "huggingface_hub")


def configure_daemon_logging(level_name: str, log_dir: Path) -> Path:
    """Log to the terminal and to a rotating ``log_dir/daemon.log``; returns that file's path.

    OSError when the file cannot be opened: a daemon that cannot write its log cannot start
    its workers either (their logs live there too), so it must not start at all.
    """
    level = getattr(logging, level_name.upper(), logging.INFO)
    path = log_dir / "daemon.log"
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [
        logging.StreamHandler(sys.stderr),
        logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
        ),
    ]
    private(path)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    return path


def private(path: Path) -> None:
    """Make a log file readable by its owner only: it holds prompts and folder names."""
    if sys.platform != "win32":
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)


def rotate_if_large(path: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> None:
    """Shift ``path`` to ``path.1`` (``.1`` to ``.2``...) when it is over ``max_bytes``."""
    try:
        if path.stat().st_size <= max_bytes:
            return
    except OSError:
        return
    for index in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{index + 1}"))
    path.replace(path.with_name(f"{path.name}.1"))
