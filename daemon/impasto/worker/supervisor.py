"""Runs inference worker processes, feeds them queued jobs, and recovers when one dies."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from impasto.logs import rotate_if_large
from impasto.worker.protocol import (
    HEADER,
    CancelJob,
    FromWorker,
    JobCancelled,
    JobDone,
    JobFailed,
    ModelsLoaded,
    Ready,
    RunJob,
    Shutdown,
    Started,
    StepProgress,
    ToWorker,
    decode_from_worker,
    encode_frame,
)

log = logging.getLogger("impasto.supervisor")


def worker_command() -> list[str]:
    """How to start a worker: the same executable with the ``worker`` subcommand.

    Inside the onefile binary this process already runs the unpacked executable
    (``sys.executable``, while ``sys.argv[0]`` names the one file). Starting that directly
    skips the onefile bootstrap, which re-checks the whole unpacked payload on every start
    (about half a second) and stays alive as an extra process beside each worker.
    """
    if "__compiled__" in globals() or getattr(sys, "frozen", False):
        if sys.executable and os.path.isfile(sys.executable):
            return [sys.executable, "worker"]
        return [sys.argv[0], "worker"]
    return [sys.executable, "-m", "impasto.worker"]


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

    async def send(self, message: ToWorker) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(encode_frame(message))
        with contextlib.suppress(ConnectionError):
            await self.process.stdin.drain()

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


class JobRunner(Protocol):
    """What the supervisor needs from the job service (kept narrow so tests can fake it)."""

    paused: bool

    def claim_next(self, worker_id: str) -> Any: ...
    def run_message(self, job: Any) -> RunJob: ...
    def on_started(self, job_id: str, message: Started) -> None: ...
    def on_progress(self, job_id: str, message: StepProgress) -> None: ...
    def on_done(self, job_id: str, message: JobDone) -> None: ...
    def on_failed(self, job_id: str, error: str) -> None: ...
    def on_cancelled(self, job_id: str) -> None: ...
    def on_interrupted(self, job: Any, reason: str) -> None: ...


class Supervisor:
    """Keeps ``count`` workers alive and feeds each one job at a time."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        count: int = 1,
        worker_args: list[str] | None = None,
        command: Callable[[], list[str]] = worker_command,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.runner = runner
        self.count = max(1, count)
        self.worker_args = worker_args or []
        self.command = command
        self.env = env
        self.log_dir = log_dir
        self.handles: dict[str, WorkerHandle] = {}
        self.provider: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for slot in range(self.count):
            self._tasks.append(asyncio.create_task(self._keep_alive(slot), name=f"worker-{slot}"))

    def live_workers(self) -> list[WorkerHandle]:
        """The workers that are up (idle or busy), in start order."""
        return [h for h in self.handles.values() if h.state in ("idle", "busy")]

    async def broadcast(self, message: ToWorker) -> int:
        """Send ``message`` to every live worker; returns how many got it."""
        workers = self.live_workers()
        for handle in workers:
            await handle.send(message)
        return len(workers)

    def describe(self) -> list[dict[str, Any]]:
        """Every worker as /system reports it."""
        return [h.to_json() for h in self.handles.values()]

    def wake(self) -> None:
        """A job was queued or the queue resumed: idle workers look again."""
        self._wake.set()

    async def cancel(self, job_id: str) -> bool:
        for handle in self.handles.values():
            if handle.job_id == job_id:
                await handle.send(CancelJob(job_id=job_id))
                return True
        return False

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop after cancelling its running step; kill stragglers."""
        self._stopping = True
        self._wake.set()
        for handle in list(self.handles.values()):
            with contextlib.suppress(Exception):
                await handle.send(Shutdown())
        for handle in list(self.handles.values()):
            try:
                await asyncio.wait_for(handle.process.wait(), timeout)
            except TimeoutError:
                handle.process.kill()
                await handle.process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _spawn(self, slot: int) -> WorkerHandle:
        args = [*self.command(), *self.worker_args, "--device-id", str(slot)]
        stderr: Any = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = self.log_dir / f"worker-{slot}.log"
            rotate_if_large(log_file)
            stderr = log_file.open("ab")
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(self.env or {})},
        )
        if stderr is not None:
            stderr.close()
        handle = WorkerHandle(id=f"worker-{slot}", device_id=slot, process=process)
        handle.reader = asyncio.create_task(self._read(handle))
        return handle

    async def _read(self, handle: WorkerHandle) -> None:
        stdout = handle.process.stdout
        assert stdout is not None
        try:
            while True:
                header = await stdout.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                message = decode_from_worker(await stdout.readexactly(size))
                if isinstance(message, ModelsLoaded):
                    handle.loaded = message.loaded
                else:
                    handle.inbox.put_nowait(message)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("%s sent an unreadable frame", handle.id)
            handle.process.kill()
        await handle.process.wait()
        handle.state = "dead"
        handle.dead.set()
        handle.inbox.put_nowait(None)

    async def _keep_alive(self, slot: int) -> None:
        backoff = 0.5
        while not self._stopping:
            started = time.monotonic()
            handle = await self._spawn(slot)
            self.handles[handle.id] = handle
            try:
                await self._serve(handle)
            except Exception:
                log.exception("supervising %s failed", handle.id)
                with contextlib.suppress(ProcessLookupError):
                    handle.process.kill()
            await handle.process.wait()
            if self._stopping:
                return
            log.warning("%s: %s; restarting", handle.id, describe_exit(handle.process.returncode))
            # A worker that ran a while is restarted at once; one that keeps dying backs off.
            backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)

    async def _serve(self, handle: WorkerHandle) -> None:
        first = await handle.inbox.get()
        if not isinstance(first, Ready):
            return
        handle.provider = first.provider
        self.provider = first.provider
        handle.state = "idle"
        while not self._stopping and not handle.dead.is_set():
            job = None if self.runner.paused else self.runner.claim_next(handle.id)
            if job is None:
                self._wake.clear()
                await self._wait_for_work(handle)
                continue
            handle.state, handle.job_id = "busy", job.id
            await handle.send(self.runner.run_message(job))
            finished = await self._follow(handle, job)
            handle.state, handle.job_id = "idle", None
            if not finished:
                reason = describe_exit(handle.process.returncode)
                if self._stopping and handle.process.returncode == 0:
                    reason = "daemon stopped"
                self.runner.on_interrupted(job, reason)
                return

    async def _wait_for_work(self, handle: WorkerHandle) -> None:
        waiters = [asyncio.create_task(self._wake.wait()), asyncio.create_task(handle.dead.wait())]
        try:
            await asyncio.wait(waiters, timeout=5.0, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()

    async def _follow(self, handle: WorkerHandle, job: Any) -> bool:
        """Relay one job's messages; False when the worker died before finishing it."""
        while True:
            message = await handle.inbox.get()
            if message is None:
                return False
            if isinstance(message, Started):
                self.runner.on_started(job.id, message)
            elif isinstance(message, StepProgress):
                self.runner.on_progress(job.id, message)
            elif isinstance(message, JobDone):
                self.runner.on_done(job.id, message)
                return True
            elif isinstance(message, JobFailed):
                error = f"{message.field}: {message.error}" if message.field else message.error
                self.runner.on_failed(job.id, error)
                return True
            elif isinstance(message, JobCancelled):
                if self._stopping:
                    self.runner.on_interrupted(job, "daemon stopped")
                else:
                    self.runner.on_cancelled(job.id)
                return True


def preview_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
