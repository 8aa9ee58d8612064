"""Cancelling a running job ends it cancelled, whatever its worker does after the cancel."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from impasto.worker.supervisor import Supervisor

from .fake_runner import StartedRunner

# A worker that speaks the frame protocol: Started for its job, then, on the cancel, nothing
# (a postprocessor that never returns: "hang"), its finished images ("finish": the cancel
# came after its last check) or a failure ("fail": a plugin that broke as it was stopped).
FAKE_WORKER = """
import os, sys
from pathlib import Path
from impasto.worker.protocol import (
    CancelJob, JobDone, JobFailed, Ready, Shutdown, Started, decode_to_worker, encode_frame,
    read_frame,
)
mode, image = sys.argv[1], Path(sys.argv[2])
out = sys.stdout.buffer
def send(message):
    out.write(encode_frame(message))
    out.flush()
send(Ready(pid=os.getpid(), provider={"name": "fake"}))
while (body := read_frame(sys.stdin.buffer)) is not None:
    message = decode_to_worker(body)
    if isinstance(message, Shutdown):
        break
    if not isinstance(message, CancelJob):
        send(Started(job_id="job-1", total=20, seeds=[1]))
    elif mode == "finish":
        image.write_bytes(b"png")
        result = {"index": 0, "path": str(image), "seed": 1, "width": 8, "height": 8}
        send(JobDone(job_id="job-1", results=[result]))
    elif mode == "fail":
        send(JobFailed(job_id="job-1", error="plugin 'slow' failed in postprocess_result"))
"""


class Store:
    """What the runner records in the job store, for one job."""

    def __init__(self) -> None:
        self.job: Any = SimpleNamespace(id="job-1", attempts=0)
        self.status = "processing"

    def claim_next(self, worker_id: str) -> Any:
        job, self.job = self.job, None
        return job

    def get(self, job_id: str) -> Any:
        return SimpleNamespace(id=job_id, attempts=0)

    def mark_cancelled(self, job_id: str) -> None:
        self.status = "cancelled"

    def mark_completed(self, job_id: str, results: list[dict[str, Any]]) -> None:
        self.status = "completed"

    def mark_failed(self, job_id: str, error: str) -> None:
        self.status = "failed"

    def requeue(self, job_id: str, reason: str) -> None:
        self.status = "queued"

    def position(self, job_id: str) -> int:
        return 1


class Bus:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.ended = asyncio.Event()

    def publish(self, kind: str, job_id: str | None, data: Any, extra: Any = None) -> None:
        self.events.append(kind)
        if kind in ("completed", "failed", "cancelled"):
            self.ended.set()


class Runner(StartedRunner):
    """The real runner on a fake store and bus."""

    def __init__(self, output_dir: Path) -> None:
        super().__init__(Store(), Bus(), output_dir)


async def _cancel_running(mode: str, tmp_path: Path, grace: float) -> tuple[Runner, int, int]:
    """Run the job on the fake worker, cancel it; the runner and the worker pids before and
    after the job ended."""
    runner = Runner(tmp_path)
    image = tmp_path / "job-1-0.png"
    command = [sys.executable, "-c", FAKE_WORKER, mode, str(image)]
    workers = Supervisor(runner, command=lambda: command, cancel_grace=grace)
    workers.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 30)
        [handle] = workers.live_workers()
        assert await workers.cancel("job-1")
        await asyncio.wait_for(runner.bus.ended.wait(), 30)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while not (serving := [h for h in workers.live_workers() if not h.dead.is_set()]):
            assert time.monotonic() < deadline, "no worker came back"
            await asyncio.sleep(0.05)
        return runner, handle.process.pid, serving[0].process.pid
    finally:
        await workers.stop(timeout=5)


def test_a_worker_that_does_not_stop_a_cancelled_job_is_restarted(tmp_path: Path) -> None:
    """A postprocessor that never returns cannot hold a cancelled job: after the grace period
    the worker is restarted, and the job ends cancelled."""
    started = time.monotonic()
    runner, before, after = asyncio.run(_cancel_running("hang", tmp_path, grace=0.5))
    assert time.monotonic() - started >= 0.5
    assert runner.store.status == "cancelled"
    assert runner.bus.events == ["started", "cancelled"]  # type: ignore[attr-defined]
    assert after != before


def test_a_job_that_finishes_after_its_cancel_ends_cancelled_without_images(
    tmp_path: Path,
) -> None:
    """The cancel was answered "cancelling": the job does not end completed after all."""
    runner, before, after = asyncio.run(_cancel_running("finish", tmp_path, grace=30.0))
    assert runner.store.status == "cancelled"
    assert runner.bus.events == ["started", "cancelled"]  # type: ignore[attr-defined]
    assert not (tmp_path / "job-1-0.png").exists()
    assert after == before  # it answered: no restart


def test_a_job_that_fails_on_its_way_out_after_its_cancel_ends_cancelled(tmp_path: Path) -> None:
    runner, _, _ = asyncio.run(_cancel_running("fail", tmp_path, grace=30.0))
    assert runner.store.status == "cancelled"
    assert runner.bus.events == ["started", "cancelled"]  # type: ignore[attr-defined]
