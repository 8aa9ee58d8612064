"""A worker the out-of-memory killer stops fails its job at once, with a reason; other crashes
are retried. The kernel's count is read from the daemon's memory cgroup (v1 or v2)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from impasto.worker import oom, supervisor
from impasto.worker.protocol import LoadModel, RunJob, Started
from impasto.worker.supervisor import Supervisor


def _cgroup(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "cgroup"
    proc.write_text(membership)
    root = tmp_path / "sys"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return proc, root


V1 = "4:memory:/process_api/abc\n3:cpuset:/\n0::/\n"
V1_FILE = "memory/process_api/abc/memory.oom_control"
V1_TEXT = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
V2_TEXT = "low 0\nhigh 0\nmax 2\noom 2\noom_kill 7\noom_group_kill 0\n"


def test_the_count_is_read_from_the_memory_cgroup(tmp_path: Path) -> None:
    # cgroup v1 (as on this CI machine's container): the memory controller's oom_control.
    assert oom.oom_kill_count(*_cgroup(tmp_path / "v1", V1, {V1_FILE: V1_TEXT})) == 3
    # cgroup v2: the unified hierarchy's memory.events.
    v2 = _cgroup(
        tmp_path / "v2",
        "0::/user.slice/impasto.service\n",
        {"user.slice/impasto.service/memory.events": V2_TEXT},
    )
    assert oom.oom_kill_count(*v2) == 7
    # Inside a cgroup namespace the process's own cgroup is the root.
    assert oom.oom_kill_count(*_cgroup(tmp_path / "ns", "0::/\n", {"memory.events": V2_TEXT})) == 7
    # Hybrid: the unified hierarchy has no memory controller; v1's memory controller counts.
    hybrid = _cgroup(tmp_path / "hybrid", V1, {V1_FILE: V1_TEXT, "memory.events": V2_TEXT})
    assert oom.oom_kill_count(*hybrid) == 3
    # A kernel without the counter, or no cgroup files at all: unknown.
    assert oom.oom_kill_count(*_cgroup(tmp_path / "old", V1, {V1_FILE: "under_oom 0\n"})) is None
    assert oom.oom_kill_count(tmp_path / "missing", tmp_path) is None


def test_only_a_sigkill_with_a_counted_oom_kill_is_out_of_memory() -> None:
    assert oom.killed_for_memory(-9, 3, 4)
    assert not oom.killed_for_memory(-9, 3, 3)  # killed by someone else (kill -9)
    assert not oom.killed_for_memory(-11, 3, 4)  # a crash of its own
    assert not oom.killed_for_memory(-9, None, None)  # no counter (macOS, Windows)


# A worker that speaks the frame protocol: Ready, then Started for each job, then waits.
FAKE_WORKER = """
import os, sys
from impasto.worker.protocol import Ready, Started, decode_to_worker, encode_frame, read_frame
out = sys.stdout.buffer
out.write(encode_frame(Ready(pid=os.getpid(), provider={"name": "fake"})))
out.flush()
while (body := read_frame(sys.stdin.buffer)) is not None:
    message = decode_to_worker(body)
    out.write(encode_frame(Started(job_id="job-1", total=20, seeds=[1])))
    out.flush()
"""


class Runner:
    """The job service's side, recording what the supervisor tells it about one job."""

    paused = False

    def __init__(self) -> None:
        self.job: Any = SimpleNamespace(id="job-1", attempts=0)
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.calls: list[tuple[str, str]] = []

    def claim_next(self, worker_id: str) -> Any:
        job, self.job = self.job, None
        return job

    def run_message(self, job: Any) -> RunJob:
        return LoadModel(model_dir="unused")  # type: ignore[return-value]  # the fake ignores it

    def on_started(self, job_id: str, message: Started) -> None:
        self.started.set()

    def on_progress(self, job_id: str, message: Any) -> None: ...
    def on_done(self, job_id: str, message: Any) -> None: ...
    def on_cancelled(self, job_id: str) -> None: ...
    def fail_queued(self, reason: str) -> int:
        return 0

    def on_failed(self, job_id: str, error: str) -> None:
        self.calls.append(("failed", error))
        self.ended.set()

    def on_interrupted(self, job: Any, reason: str, *, retry: bool = True) -> None:
        # A try a dead worker cut short, retried or not: the runner counts it in ``attempts``.
        self.calls.append(("interrupted" if retry else "interrupted, not retried", reason))
        self.ended.set()


async def _kill_mid_job(counted: int, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Run one job on the fake worker, SIGKILL it while the kernel's count rises by ``counted``."""
    count = {"oom_kill": 41}
    monkeypatch.setattr(supervisor, "oom_kill_count", lambda: count["oom_kill"])
    runner = Runner()
    workers = Supervisor(runner, command=lambda: [sys.executable, "-c", FAKE_WORKER])
    workers.start()
    try:
        await asyncio.wait_for(runner.started.wait(), 30)
        [handle] = workers.live_workers()
        count["oom_kill"] += counted
        os.kill(handle.process.pid, signal.SIGKILL)
        await asyncio.wait_for(runner.ended.wait(), 30)
    finally:
        await workers.stop(timeout=5)
    return runner.calls


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_job_whose_worker_the_oom_killer_stopped_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = asyncio.run(_kill_mid_job(1, monkeypatch))
    assert calls == [("interrupted, not retried", oom.OUT_OF_MEMORY)]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_worker_killed_otherwise_has_its_job_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = asyncio.run(_kill_mid_job(0, monkeypatch))
    assert calls == [("interrupted", "worker killed by signal 9 (SIGKILL)")]
