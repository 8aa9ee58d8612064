"""A worker process as the daemon sees it: how to start one, and how to word its end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from impasto.logs import private, rotate_if_large
from impasto.resources import compiled
from impasto.worker.oom import OUT_OF_MEMORY, killed_for_memory
from impasto.worker.protocol import (
    HEADER,
    FromWorker,
    ModelsLoaded,
    ToWorker,
    decode_from_worker,
    encode_frame,
)

log = logging.getLogger("impasto.supervisor")
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
    # Model folder -> the loads waiting for the worker's answer ('' loaded, else why not).
    load_waits: dict[str, list[asyncio.Future[str]]] = field(default_factory=dict)

    def expect_load(self, model_dir: str) -> asyncio.Future[str]:
        """The worker's answer to a LoadModel of ``model_dir`` sent after this call: '' once
        it holds the model, else why it could not load it (or why it is gone)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.load_waits.setdefault(model_dir, []).append(future)
        return future

    def models_reported(self, message: ModelsLoaded) -> None:
        """Take the worker's report of what it holds; answer the loads it answers."""
        self.loaded = message.loaded
        if message.load_of:
            self._answer(self.load_waits.pop(message.load_of, []), message.load_error)

    def gone(self) -> None:
        """The worker exited: loads still waiting get why."""
        waits, self.load_waits = self.load_waits, {}
        for futures in waits.values():
            self._answer(futures, f"the worker exited while loading it ({self.exit_reason()})")

    @staticmethod
    def _answer(futures: list[asyncio.Future[str]], error: str) -> None:
        for future in futures:
            if not future.done():  # a load that stopped waiting cancelled its future
                future.set_result(error)

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


async def spawn_worker(
    args: list[str], slot: int, log_dir: Path | None, env: dict[str, str] | None
) -> WorkerHandle:
    """Start the worker program ``args`` for ``slot`` (its stderr appended to
    ``worker-<slot>.log`` in ``log_dir``) and read its frames into the handle's inbox."""
    stderr: Any = None
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
        log_file = log_dir / f"worker-{slot}.log"
        rotate_if_large(log_file)
        stderr = log_file.open("ab")
        private(log_file)
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        # PYTHONSAFEPATH (like -P) for any Python the worker starts in turn.
        env={**os.environ, "PYTHONSAFEPATH": "1", **(env or {})},
    )
    if stderr is not None:
        stderr.close()
    handle = WorkerHandle(id=f"worker-{slot}", device_id=slot, process=process)
    handle.reader = asyncio.create_task(_read_frames(handle))
    return handle


async def _read_frames(handle: WorkerHandle) -> None:
    """Put each message of the worker's stdout in its inbox (its loaded models on the handle);
    None there, and ``dead`` set, once it has exited."""
    stdout = handle.process.stdout
    assert stdout is not None
    try:
        while True:
            header = await stdout.readexactly(HEADER.size)
            (size,) = HEADER.unpack(header)
            message = decode_from_worker(await stdout.readexactly(size))
            if isinstance(message, ModelsLoaded):
                handle.models_reported(message)
            else:
                handle.inbox.put_nowait(message)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    except Exception:
        log.exception("%s sent an unreadable frame", handle.id)
        handle.process.kill()
    await handle.process.wait()
    handle.state = "dead"
    handle.gone()
    handle.dead.set()
    handle.inbox.put_nowait(None)
