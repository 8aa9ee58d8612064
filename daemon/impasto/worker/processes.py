"""A worker process as the daemon sees it: how to start one, and how to word its end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impasto.resources import compiled
from impasto.worker.oom import OUT_OF_MEMORY, killed_for_memory
from impasto.worker.protocol import FromWorker, ToWorker, encode_frame

_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b: ")


# The binary's hidden subcommands for its child processes (cli/serve.py runs them).
WORKER_WORD = "worker"
CONVERT_WORD = "convert-step"


def child_command(word: str, module: str) -> list[str]:
    """How to start this program again in a child role: the binary with the hidden subcommand
    ``word``, or this Python running ``module``.

    Inside the onefile binary this process already runs the unpacked executable
    (``sys.executable``, while ``sys.argv[0]`` names the one file). Starting that directly
    skips the onefile bootstrap, which re-checks the whole unpacked payload on every start
    (about half a second) and stays alive as an extra process beside each child.
    """
    if compiled():
        if sys.executable and os.path.isfile(sys.executable):
            return [sys.executable, word]
        return [sys.argv[0], word]
    # -P: the working directory does not go first on the import path, so a folder named
    # "impasto" where the daemon was started (a clone, say) cannot shadow the package.
    return [sys.executable, "-P", "-m", module]


def worker_command() -> list[str]:
    """How to start a worker: ``impasto worker`` in the binary, ``-m impasto.worker`` else."""
    return child_command(WORKER_WORD, "impasto.worker")


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "worker stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown"
        return f"worker killed by signal {-returncode} ({name})"
    return f"worker exited with code {returncode}"


@dataclass
class WorkerHandle:
    """One running worker process as the daemon sees it."""

    id: str
    device_id: int
    process: asyncio.subprocess.Process
    inbox: asyncio.Queue[FromWorker | None] = field(default_factory=asyncio.Queue)
    state: str = "starting"
    job_id: str | None = None
    provider: dict[str, Any] = field(default_factory=dict)
    loaded: list[dict[str, Any]] = field(default_factory=list)
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    ready: bool = False  # it said Ready (a start that never does is a failed start)
    stuck: str = ""  # why it was killed before Ready, when it was

    async def send(self, message: ToWorker) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode_frame(message))
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

    def exit_reason(self) -> str:
        """Why the worker is gone, in the words a requeued job records."""
        return describe_exit(self.process.returncode)

    def memory_kill(self, oom_kills_before: int | None, oom_kills_after: int | None) -> str:
        """Why the system stopped this (exited) worker for want of memory, or "": Linux's
        OOM killer, told by the memory cgroup's kill counts around its job (worker/oom.py)."""
        killed = killed_for_memory(self.process.returncode, oom_kills_before, oom_kills_after)
        return OUT_OF_MEMORY if killed else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.process.pid,
            "device_id": self.device_id,
            "state": self.state,
            "job_id": self.job_id,
            "provider": self.provider,
            "loaded": self.loaded,
        }


def last_error_line(path: Path | None) -> str:
    """The last line of a worker log that names an error (a traceback's last line), or ""."""
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 8192))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    raised = [line for line in lines if _RAISED.match(line)]  # "module.SomeError: message"
    return (raised or lines or [""])[-1][:300]
