"""max_history: the history is trimmed to the newest finished jobs, in short writes."""

from __future__ import annotations

import pytest

from impasto.store import JobStore


def _finish(jobs: JobStore, count: int, status: str = "completed") -> list[str]:
    ids = []
    for i in range(count):
        job, _ = jobs.create({}, model="m", prompt=f"p{i}")
        jobs.db.execute("UPDATE jobs SET status = ? WHERE id = ?", (status, job.id))
        ids.append(job.id)
    return ids


def test_prune_keeps_the_newest_finished_jobs_and_every_active_one(jobs: JobStore) -> None:
    old = _finish(jobs, 4, "failed") + _finish(jobs, 3, "cancelled")
    queued, _ = jobs.create({}, model="m", prompt="waits")
    running, _ = jobs.create({}, model="m", prompt="runs")
    jobs.db.execute("UPDATE jobs SET status = 'processing' WHERE id = ?", (running.id,))
    new = _finish(jobs, 5)
    # A batch smaller than the work: the trim takes several statements and ends all the same.
    assert jobs.prune_history(6, batch=2) == old[:-1]  # oldest first
    left = {job.id for job in jobs.history(limit=100)[0]}
    assert left == {queued.id, running.id, *new, old[-1]}
    assert jobs.prune_history(6) == []  # nothing more to do
    assert len(jobs.prune_history(0)) == 6
    assert {job.id for job in jobs.history(limit=100)[0]} == {queued.id, running.id}


def test_prune_refuses_a_negative_keep(jobs: JobStore) -> None:
    with pytest.raises(ValueError, match="keep"):
        jobs.prune_history(-1)
