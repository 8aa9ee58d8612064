"""The daemon as the tray's child process: start, graceful stop, restart with backoff."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from impasto.resources import compiled

log = logging.getLogger(__name__)

# Seconds to wait before each restart after a crash; the last one repeats.
BACKOFF = (1.0, 2.0, 5.0, 15.0, 30.0)
# A daemon that ran this long before dying starts the backoff from the beginning again.
STABLE_AFTER = 60.0


def impasto_command(*args: str) -> list[str]:
    """How to run an `impasto` subcommand: the binary itself, or this Python's module."""
    if compiled():
        return [os.path.abspath(sys.argv[0]), *args]
    # -P: the working directory (the home folder at login) does not go first on the import
    # path, so a folder named "impasto" there cannot shadow the package (as for the workers).
    return [sys.executable, "-P", "-m", "impasto", *args]


class DaemonProcess:
    """One `impasto serve` child; ``poll()`` notices a crash and restarts it after a backoff."""

    def __init__(
        self,
        command: Sequence[str] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        log_file: Path | None = None,
        backoff: Sequence[float] = BACKOFF,
        clock: Callable[[], float] = time.monotonic,
        popen: Callable[..., subprocess.Popen[bytes]] = subprocess.Popen,
    ) -> None:
        self.command = list(command or impasto_command("serve"))
        self.env = dict(env if env is not None else os.environ)
        self.log_file = log_file
        self.backoff = tuple(backoff)
        self.clock = clock
        self.popen = popen
        self.process: subprocess.Popen[bytes] | None = None
        self.crashes = 0
        self.restart_at: float | None = None
        self.last_exit: int | None = None
        self.last_reason = ""  # the daemon's own last words (``impasto: ...``), if it said any
        self._started_at = 0.0
        self._output_from = 0

    @property
    def alive(self) -> bool:
        """The child process exists and has not exited."""
        return self.process is not None and self.process.poll() is None

    @property
    def wanted(self) -> bool:
        """Started and not stopped on purpose: a death is a crash to recover from."""
        return self.process is not None or self.restart_at is not None

    def start(self) -> None:
        """Start the child now (no-op while it runs)."""
        if self.alive:
            return
        self.restart_at = None
        env = dict(self.env)
        # The daemon stops by itself if the tray dies without stopping it.
        env["IMPASTO_PARENT_PID"] = str(os.getpid())
        output: IO[bytes] | int = subprocess.DEVNULL
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_file.open("ab")
            self._output_from = output.seek(0, os.SEEK_END)  # this run's output starts here
        options: dict[str, Any] = {}
        if sys.platform == "win32":
            # Its own group, so that CTRL_BREAK reaches the daemon and not the tray.
            options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            # Its own session, so that Ctrl+C in the tray's terminal reaches only the tray,
            # which then stops the daemon gracefully (and not twice).
            options["start_new_session"] = True
        log.info("starting the daemon: %s", " ".join(self.command))
        self.process = self.popen(
            self.command, env=env, stdout=output, stderr=subprocess.STDOUT, **options
        )
        if not isinstance(output, int):
            output.close()  # the child has its own handle
        self._started_at = self.clock()

    def exit_message(self) -> str:
        """Why the daemon last exited, for the tray's status line."""
        code = f"the daemon exited with code {self.last_exit}"
        return f"{code}: {self.last_reason}" if self.last_reason else code

    def stop(self, timeout: float = 30.0) -> int | None:
        """Ask the child to stop (SIGTERM / CTRL_BREAK), kill it after ``timeout``; no restart."""
        self.restart_at = None
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            if sys.platform == "win32":
                process.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined,unused-ignore]
            else:
                process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("the daemon did not stop in %.0f s; killing it", timeout)
                process.kill()
                process.wait()
        self.last_exit = process.returncode
        return process.returncode

    def poll(self) -> bool:
        """Notice a crash and schedule or perform the restart; True while a restart is pending."""
        now = self.clock()
        if self.process is not None and self.process.poll() is not None:
            self.last_exit = self.process.returncode
            self.last_reason = last_words(self.log_file, self._output_from)
            if now - self._started_at >= STABLE_AFTER:
                self.crashes = 0
            delay = self.backoff[min(self.crashes, len(self.backoff) - 1)]
            self.crashes += 1
            self.process = None
            self.restart_at = now + delay
            log.warning("the daemon exited with %s; restarting in %.0f s", self.last_exit, delay)
        if self.restart_at is not None and now >= self.restart_at:
            self.start()
        return self.restart_at is not None


REFUSAL = "impasto: "  # how ``impasto serve`` starts the one line it prints before exiting 1
TAIL_BYTES = 8192


def last_words(log_file: Path | None, start: int = 0) -> str:
    """The daemon's last ``impasto: ...`` line in its output file after offset ``start`` (where
    its run began): a refused start says why there (a port in use, another daemon running).
    Without the prefix; "" when there is none."""
    if log_file is None:
        return ""
    try:
        with log_file.open("rb") as out:
            out.seek(max(start, out.seek(0, os.SEEK_END) - TAIL_BYTES))
            tail = out.read().decode("utf-8", "replace")
    except OSError:
        return ""
    said = [line for line in tail.splitlines() if line.startswith(REFUSAL)]
    return said[-1].removeprefix(REFUSAL).strip() if said else ""
