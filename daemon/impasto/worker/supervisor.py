"""Runs inference worker processes, feeds them queued jobs, and recovers when one dies."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from impasto.worker.oom import oom_kill_count
from impasto.worker.processes import (
    WorkerHandle,
    describe_exit,
    last_error_line,
    spawn_worker,
    worker_command,
)
from impasto.worker.protocol import (
    CancelJob,
    JobCancelled,
    JobDone,
    JobFailed,
    Ready,
    RunJob,
    Shutdown,
    Started,
    StepProgress,
    ToWorker,
)

log = logging.getLogger("impasto.supervisor")
# Starts in a row that die before the worker says Ready, before health reports a problem and
# queued jobs fail with its reason instead of waiting for a worker that never comes.
MAX_START_FAILURES = 3
# Seconds a worker has to stop a cancelled job (its next sampler step, its next plugin call)
# before it is restarted: a plugin hook that never returns must not hold the job.
CANCEL_GRACE_S = 30.0
# Seconds a new worker has to say Ready (choosing its providers, loading plugins: seconds on
# any machine) before it is killed as a failed start: one stuck there held the queue for ever
# while health said ok.
READY_TIMEOUT_S = 120.0


class JobRunner(Protocol):
    """What the supervisor needs from the job service (kept narrow so tests can fake it)."""

    paused: bool

    def claim_next(self, worker_id: str) -> Any: ...
    def run_message(self, job: Any) -> RunJob: ...
    def on_started(self, job_id: str, message: Started) -> None: ...
    def on_progress(self, job_id: str, message: StepProgress) -> None: ...
    def on_done(self, job_id: str, message: JobDone) -> None: ...
    def on_done_after_cancel(self, job_id: str, message: JobDone) -> None: ...
    def on_failed(self, job_id: str, error: str) -> None: ...
    def on_cancelled(self, job_id: str) -> None: ...
    def on_interrupted(self, job: Any, reason: str, *, retry: bool = True) -> None: ...
    def fail_queued(self, reason: str) -> int: ...


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
        cancel_grace: float = CANCEL_GRACE_S,
    ) -> None:
        self.runner = runner
        self.cancel_grace = cancel_grace
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
        # Jobs whose interruption could not be recorded yet (a full disk): retried until it is.
        self._unsettled: dict[str, tuple[Any, str, bool]] = {}
        self._cancelled: set[str] = set()
        self._running: set[str] = set()  # jobs claimed and not yet recorded as ended
        self._cancel_watches: set[asyncio.Task[None]] = set()
        # Per worker slot: starts in a row that failed, and why the last one did.
        self._start_failures: dict[int, int] = {}
        self._problems: dict[int, str] = {}

    def start(self) -> None:
        for slot in range(self.count):
            self._tasks.append(asyncio.create_task(self._keep_alive(slot), name=f"worker-{slot}"))

    @property
    def problem(self) -> str | None:
        """Why workers cannot start (after MAX_START_FAILURES tries in a row), else None."""
        return next(iter(self._problems.values()), None)

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
        """Ask the worker running ``job_id`` to stop it; True if one runs it. The job ends
        ``cancelled`` whatever the worker answers next (it died, or it finished: the
        images go), and a worker still on it after ``cancel_grace`` seconds is restarted."""
        for handle in self.handles.values():
            if handle.job_id == job_id:
                self._cancelled.add(job_id)  # honoured even if the worker dies first
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await handle.send(CancelJob(job_id=job_id))
                watch = asyncio.create_task(self._restart_if_stuck(handle, job_id))
                self._cancel_watches.add(watch)
                watch.add_done_callback(self._cancel_watches.discard)
                return True
        return False

    async def _restart_if_stuck(self, handle: WorkerHandle, job_id: str) -> None:
        await asyncio.sleep(self.cancel_grace)
        if handle.job_id != job_id or handle.dead.is_set() or self._stopping:
            return
        log.warning(
            "%s has not stopped cancelled job %s in %g s (a plugin hook or a step that does "
            "not return); restarting it",
            handle.id,
            job_id,
            self.cancel_grace,
        )
        with contextlib.suppress(ProcessLookupError):
            handle.process.kill()

    async def stop(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop after cancelling its running step; kill stragglers."""
        self._stopping = True
        self._wake.set()
        for watch in list(self._cancel_watches):
            watch.cancel()
        for handle in list(self.handles.values()):
            with contextlib.suppress(Exception):
                await handle.send(Shutdown())
        for handle in list(self.handles.values()):
            try:
                await asyncio.wait_for(handle.process.wait(), timeout)
            except TimeoutError:
                handle.process.kill()
                await handle.process.wait()
        # Each running job's end is recorded (released to the queue) before the tasks go: a
        # job left processing would count as a try at the next start.
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _spawn(self, slot: int) -> WorkerHandle:
        args = [*self.command(), *self.worker_args, "--device-id", str(slot)]
        return await spawn_worker(args, slot, self.log_dir, self.env)

    async def _keep_alive(self, slot: int) -> None:
        backoff = 0.5
        while not self._stopping:
            started = time.monotonic()
            try:
                handle = await self._spawn(slot)
            except OSError as exc:  # its log file cannot be opened, its program is missing
                where = f" ({exc.filename})" if exc.filename else ""
                log.error("worker-%d could not be started: %s%s", slot, exc.strerror or exc, where)
                await self._start_failed(
                    slot, f"it could not be started: {exc.strerror or exc}{where}"
                )
                backoff = min(backoff * 2, 30.0)
                await asyncio.sleep(backoff)
                continue
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
            self._retry_unsettled()
            handle.state = "restarting"  # what /system shows until the new worker is up
            log.warning("%s: %s; restarting", handle.id, describe_exit(handle.process.returncode))
            if not handle.ready:
                await self._start_failed(slot, await self._why_it_died(slot, handle))
            # A worker that ran a while is restarted at once; one that keeps dying backs off.
            backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)

    async def _serve(self, handle: WorkerHandle) -> None:
        try:
            first = await asyncio.wait_for(handle.inbox.get(), READY_TIMEOUT_S)
        except TimeoutError:
            handle.stuck = f"it did not say it was ready within {READY_TIMEOUT_S:g} s"
            log.error("%s: %s; killing it", handle.id, handle.stuck)
            with contextlib.suppress(ProcessLookupError):
                handle.process.kill()
            return
        if not isinstance(first, Ready):
            return
        handle.provider = first.provider
        self.provider = first.provider
        handle.state, handle.ready = "idle", True
        self._start_failures.pop(handle.device_id, None)
        self._problems.pop(handle.device_id, None)
        while not self._stopping and not handle.dead.is_set():
            self._retry_unsettled()
            job = None if self.runner.paused else self.runner.claim_next(handle.id)
            if job is None:
                self._wake.clear()
                await self._wait_for_work(handle)
                continue
            self._running.add(job.id)
            try:
                if not await self._run(handle, job):
                    return
            finally:
                self._running.discard(job.id)

    async def _run(self, handle: WorkerHandle, job: Any) -> bool:
        """Run one claimed job on ``handle`` and record how it ended; False when the worker
        died (the job is requeued or failed)."""
        handle.state, handle.job_id = "busy", job.id
        oom_kills = await asyncio.to_thread(oom_kill_count)
        try:
            await handle.send(self.runner.run_message(job))
            finished = await self._follow(handle, job)
        except Exception as exc:
            # Recording the job failed (a full disk, a bug): the worker is restarted by
            # the caller, and the job is requeued or failed, never left processing.
            handle.state, handle.job_id = "idle", None
            self._settle(job, job_error(exc))
            raise
        # A worker that died is not idle: /system says so until its restart is up.
        handle.state, handle.job_id = ("idle" if finished else "dead"), None
        if finished:
            self._cancelled.discard(job.id)
            return True
        reason, retry = handle.exit_reason(), True
        if self._stopping:
            # It stopped as asked, or stop() killed it for not stopping in time: either
            # way a stop of the daemon, which is no try of the job.
            reason = "daemon stopped"
        elif memory := handle.memory_kill(oom_kills, await asyncio.to_thread(oom_kill_count)):
            # Another try would meet the same wall and cost another worker.
            reason, retry = memory, False
        self._settle(job, reason, retry=retry)
        return False

    async def _why_it_died(self, slot: int, handle: WorkerHandle) -> str:
        """How a worker that died before Ready ended, with its log's last error line."""
        last = await asyncio.to_thread(last_error_line, self._log_file(slot))
        log_file = self._log_file(slot) or "the worker log"
        how = handle.stuck or handle.exit_reason()
        return how + (f": {last}" if last else "") + f"; see {log_file}"

    async def _start_failed(self, slot: int, why: str) -> None:
        """Count a worker that died before Ready or could not be started at all (``why``);
        past the limit, health reports it and the queue fails with it."""
        count = self._start_failures.get(slot, 0) + 1
        self._start_failures[slot] = count
        if count < MAX_START_FAILURES:
            return
        self._problems[slot] = f"the inference worker cannot start ({count} tries in a row, {why})"
        log.error("%s", self._problems[slot])
        if any(h.ready and not h.dead.is_set() for h in self.handles.values()):
            return  # another worker still runs the queue
        try:
            failed = self.runner.fail_queued(self._problems[slot])
        except Exception as exc:
            log.error("could not fail the queued jobs (%s)", exc)
            return
        if failed:
            log.error("failed %d queued job(s): no worker can start", failed)

    def _log_file(self, slot: int) -> Path | None:
        return self.log_dir / f"worker-{slot}.log" if self.log_dir else None

    def _settle(self, job: Any, reason: str, *, retry: bool = True) -> None:
        """Requeue (``retry``) or fail an interrupted job; keep it for another attempt at
        recording if even that fails."""
        try:
            if job.id in self._cancelled and reason != "daemon stopped":
                self.runner.on_cancelled(job.id)
            else:
                self.runner.on_interrupted(job, reason, retry=retry)
        except Exception as exc:
            log.error("could not record the end of job %s (%s); will retry", job.id, exc)
            self._unsettled[job.id] = (job, reason, retry)
        else:
            self._unsettled.pop(job.id, None)
            self._cancelled.discard(job.id)

    def _retry_unsettled(self) -> None:
        for job, reason, retry in list(self._unsettled.values()):
            self._settle(job, reason, retry=retry)

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
                if job.id in self._cancelled:  # it finished after the cancel was answered
                    self.runner.on_done_after_cancel(job.id, message)
                else:
                    self.runner.on_done(job.id, message)
                return True
            elif isinstance(message, JobFailed):
                error = f"{message.field}: {message.error}" if message.field else message.error
                if job.id in self._cancelled:  # failed on its way out: it ends as cancelled
                    log.info("cancelled job %s failed while stopping: %s", job.id, error)
                    self.runner.on_cancelled(job.id)
                else:
                    self.runner.on_failed(job.id, error)
                return True
            elif isinstance(message, JobCancelled):
                if self._stopping:
                    self.runner.on_interrupted(job, "daemon stopped")
                else:
                    self.runner.on_cancelled(job.id)
                return True


def job_error(exc: BaseException) -> str:
    """Why following a job failed, in words a user can act on."""
    from impasto.services.errors import is_disk_full

    if is_disk_full(exc):
        return f"disk full: the daemon could not record the job ({exc}); free some disk space"
    return f"the daemon failed while running the job: {type(exc).__name__}: {exc}"


def preview_data_url(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
