"""A worker's death as the daemon reports and records it: /system never shows a dead worker as
idle while it is restarted, and a stop of the daemon is no try of the job it interrupts, even
when the worker had to be killed for not stopping in time. A real job store on a real SQLite
file, the real runner, and fake workers that speak the frame protocol."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from impasto.store import JobStore, open_database
from impasto.worker import supervisor
from impasto.worker.supervisor import Supervisor

from .fake_runner import StartedRunner

# "die": exits as soon as it starts a job (a crash). "deaf": starts its job and never
# answers again, a Shutdown included (a step that outlasts the stop's grace period).
FAKE_WORKER = """
import os, sys, time
from impasto.worker.protocol import Ready, Started, decode_to_worker, encode_frame, read_frame
mode, job_id = sys.argv[1], sys.argv[2]
out = sys.stdout.buffer
def send(message):
    out.write(encode_frame(message))
    out.flush()
send(Ready(pid=os.getpid(), provider={"name": "fake"}))
body = read_frame(sys.stdin.buffer)
send(Started(job_id=job_id, total=20, seeds=[1]))
if mode == "die":
    sys.exit(3)
while read_frame(sys.stdin.buffer) is not None:
    pass
time.sleep(600)
"""


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []

    def publish(self, kind: str, job_id: str | None, data: Any, extra: Any = None) -> None:
        self.events.append((kind, job_id))


class Runner(StartedRunner):
    """The real runner on a real store."""

    def __init__(self, store: JobStore, output_dir: Path) -> None:
        super().__init__(store, Bus(), output_dir)


def _queued_job(tmp_path: Path) -> tuple[JobStore, str]:
    store = JobStore(open_database(tmp_path / "impasto.db"))
    job, _ = store.create({"prompt": "x"}, model="m", prompt="x", priority=0)
    return store, job.id


def test_a_dead_worker_shows_as_restarting_never_as_idle(tmp_path: Path) -> None:
    store, job_id = _queued_job(tmp_path)

    async def watch() -> tuple[list[str], list[int]]:
        runner = Runner(store, tmp_path)
        command = [sys.executable, "-c", FAKE_WORKER, "die", job_id]
        workers = Supervisor(runner, command=lambda: command)
        workers.start()
        try:
            await asyncio.wait_for(runner.started.wait(), 30)
            [worker] = workers.describe()
            first, seen, live = worker["pid"], [], []
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                [worker] = workers.describe()
                if worker["pid"] != first:
                    break  # the next worker is up
                seen.append(worker["state"])
                live.append(len(workers.live_workers()))
                await asyncio.sleep(0.01)
            return seen, live
        finally:
            await workers.stop(timeout=5)

    seen, live = asyncio.run(watch())
    after_death = seen[seen.index("busy") + 1 :] if "busy" in seen else seen
    assert "restarting" in after_death, seen
    assert set(after_death) <= {"busy", "dead", "restarting"}, seen
    assert "idle" not in after_death, seen
    # The dead worker is not counted as live while it is restarted.
    assert live[-1] == 0
    job = store.get(job_id)
    assert job is not None and job.attempts >= 1


def test_a_stop_that_kills_a_worker_that_would_not_stop_is_no_try(tmp_path: Path) -> None:
    store, job_id = _queued_job(tmp_path)

    async def stop_while_running() -> Bus:
        runner = Runner(store, tmp_path)
        command = [sys.executable, "-c", FAKE_WORKER, "deaf", job_id]
        workers = Supervisor(runner, command=lambda: command)
        workers.start()
        await asyncio.wait_for(runner.started.wait(), 30)
        await workers.stop(timeout=0.5)  # the worker ignores its Shutdown: killed
        return runner.bus  # type: ignore[return-value]

    bus = asyncio.run(stop_while_running())
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.error) == ("queued", 0, None)
    assert bus.events == [("started", job_id)]  # no retry announced: nothing was tried


def test_a_worker_that_never_says_ready_is_a_failed_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One stuck before Ready (a plugin's import that never returns) held the queue for ever
    while health said ok: it is killed after READY_TIMEOUT_S and counted as a failed start."""
    store, job_id = _queued_job(tmp_path)
    monkeypatch.setattr(supervisor, "READY_TIMEOUT_S", 0.5)

    async def wait_for_the_problem() -> tuple[str | None, list[int]]:
        runner = Runner(store, tmp_path)
        command = [sys.executable, "-c", "import time; time.sleep(600)"]
        workers = Supervisor(runner, command=lambda: command)
        workers.start()
        pids: list[int] = []
        try:
            deadline = time.monotonic() + 60
            while workers.problem is None and time.monotonic() < deadline:
                pids += [w["pid"] for w in workers.describe() if w["pid"] not in pids]
                await asyncio.sleep(0.05)
            return workers.problem, pids
        finally:
            await workers.stop(timeout=5)

    problem, pids = asyncio.run(wait_for_the_problem())
    assert problem is not None and "did not say it was ready within 0.5 s" in problem, problem
    assert len(pids) >= supervisor.MAX_START_FAILURES
    job = store.get(job_id)
    assert job is not None and job.status == "failed", job
    assert "did not say it was ready within 0.5 s" in (job.error or "")
    for pid in pids:  # each stuck worker was killed, none left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
