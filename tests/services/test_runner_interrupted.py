"""Jobs whose try was cut short: by a killed daemon (found processing at the next start) or by
a dead worker. Each such try counts against ``max_attempts``, and nothing is announced for a
job that was cancelled meanwhile. The real runner on a real job store (SQLite file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from impasto.services.runner import ORPHANED, JobRunner, RunnerOptions
from impasto.store import JobStore, open_database

KILLED = "worker killed by signal 9 (SIGKILL)"


class Bus:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []

    def publish(self, kind: str, job_id: str | None, data: dict[str, Any]) -> None:
        self.events.append((kind, job_id, data))


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(open_database(tmp_path / "impasto.db"))


def _runner(store: JobStore, tmp_path: Path, max_attempts: int = 3) -> JobRunner:
    options = RunnerOptions(tmp_path, tmp_path, max_attempts, 0, 60.0)
    return JobRunner(store, Bus(), None, options)  # type: ignore[arg-type]


def _running_job(store: JobStore) -> str:
    job, _ = store.create({"prompt": "x"}, model="m", prompt="x")
    claimed = store.claim_next("worker-0")
    assert claimed is not None and claimed.id == job.id
    return job.id


def test_a_job_that_takes_the_daemon_down_every_time_fails_after_max_attempts(
    store: JobStore, tmp_path: Path
) -> None:
    job_id = _running_job(store)
    for tries in (1, 2):  # the daemon is killed during the job, then started again
        runner = _runner(store, tmp_path)
        runner.recover_orphans()
        job = store.get(job_id)
        assert job is not None
        assert (job.status, job.attempts) == ("queued", tries)
        assert runner.bus.events == [  # type: ignore[attr-defined]
            ("queued", job_id, {"position": 0, "retry": ORPHANED})
        ]
        assert store.claim_next("worker-0") is not None
    runner = _runner(store, tmp_path)
    runner.recover_orphans()
    job = store.get(job_id)
    assert job is not None
    error = f"{ORPHANED} (tried 3 times)"
    assert (job.status, job.attempts, job.error) == ("failed", 3, error)
    assert runner.bus.events == [("failed", job_id, {"error": error})]  # type: ignore[attr-defined]


def test_one_allowed_try_fails_an_orphan_at_once(store: JobStore, tmp_path: Path) -> None:
    job_id = _running_job(store)
    _runner(store, tmp_path, max_attempts=1).recover_orphans()
    job = store.get(job_id)
    assert job is not None
    assert (job.status, job.attempts, job.error) == ("failed", 1, f"{ORPHANED} (tried once)")


def test_a_job_cancelled_while_its_worker_died_stays_cancelled_without_a_word(
    store: JobStore, tmp_path: Path
) -> None:
    """The cancel found no worker on the job (it had just died) and cancelled it in the store;
    the dead worker's retry then finds it cancelled: no "queued" or "failed" follows."""
    for max_attempts in (3, 1):  # a retry, and a last try
        job_id = _running_job(store)
        job = store.get(job_id)
        assert store.mark_cancelled(job_id) is not None
        runner = _runner(store, tmp_path, max_attempts)
        runner.on_interrupted(job, KILLED)
        after = store.get(job_id)
        assert after is not None and after.status == "cancelled"
        assert runner.bus.events == []  # type: ignore[attr-defined]
