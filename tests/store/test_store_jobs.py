"""JobStore on a real SQLite file: ordering, claiming, state changes, history."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from impasto.store import InvalidCursorError, JobStore, open_database
from impasto.store import jobs as jobs_module


def make(store: JobStore, prompt: str = "a cat", priority: int = 0) -> str:
    job, created = store.create({"prompt": prompt}, model="tiny", prompt=prompt, priority=priority)
    assert created
    return job.id


def test_create_stores_every_field(jobs: JobStore) -> None:
    job, created = jobs.create(
        {"prompt": "a cat", "steps": 4}, model="tiny", prompt="a cat", priority=3, total_steps=4
    )
    assert created
    assert str(uuid.UUID(job.id)) == job.id
    assert (job.status, job.priority, job.attempts, job.total_steps) == ("queued", 3, 0, 4)
    assert job.results == [] and job.error is None and job.worker_id is None
    assert job.started_at is None and job.completed_at is None
    assert job.created_at == job.updated_at > 0
    assert jobs.get(job.id) == job
    assert jobs.get("missing") is None


def test_seq_follows_insertion(jobs: JobStore) -> None:
    first, second = make(jobs), make(jobs)
    a, b = jobs.get(first), jobs.get(second)
    assert a is not None and b is not None and a.seq < b.seq


def test_idempotency_key_returns_existing_job(jobs: JobStore) -> None:
    job, created = jobs.create({"n": 1}, model="tiny", prompt="p", idempotency_key="key-1")
    again, created_again = jobs.create({"n": 2}, model="tiny", prompt="q", idempotency_key="key-1")
    assert created and not created_again
    assert again.id == job.id and again.request == {"n": 1}
    assert jobs.counts()["queued"] == 1


def test_idempotency_race_across_connections(db_path: Path) -> None:
    open_database(db_path).close()
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def submit() -> None:
        store = JobStore(open_database(db_path))
        barrier.wait()
        job, created = store.create({}, model="tiny", prompt="p", idempotency_key="same")
        with lock:
            results.append((job.id, created))
        store.db.close()

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert len({job_id for job_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1


def test_claim_order_is_priority_then_insertion(jobs: JobStore) -> None:
    low = make(jobs, priority=0)
    high_first = make(jobs, priority=5)
    mid = make(jobs, priority=1)
    high_second = make(jobs, priority=5)
    claimed = []
    while (job := jobs.claim_next("w1")) is not None:
        claimed.append(job.id)
    assert claimed == [high_first, high_second, mid, low]


def test_claim_sets_processing_fields(jobs: JobStore) -> None:
    job_id = make(jobs)
    job = jobs.claim_next("worker-7")
    assert job is not None and job.id == job_id
    assert job.status == "processing" and job.worker_id == "worker-7"
    assert job.started_at is not None
    assert jobs.claim_next("worker-7") is None


def test_atomic_claim_under_contention(db_path: Path) -> None:
    setup = open_database(db_path)
    store = JobStore(setup)
    created = {make(store, priority=i % 3) for i in range(200)}
    setup.close()
    claims: dict[str, list[str]] = {}
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        own = JobStore(open_database(db_path))
        mine: list[str] = []
        barrier.wait()
        while (job := own.claim_next(name)) is not None:
            mine.append(job.id)
        claims[name] = mine
        own.db.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_claims = [job_id for mine in claims.values() for job_id in mine]
    assert len(all_claims) == 200
    assert set(all_claims) == created
    check = JobStore(open_database(db_path))
    assert check.counts()["processing"] == 200
    for name, mine in claims.items():
        for job_id in mine:
            job = check.get(job_id)
            assert job is not None and job.worker_id == name


def test_position_and_count(jobs: JobStore) -> None:
    a = make(jobs)
    b = make(jobs)
    urgent = make(jobs, priority=9)
    assert [jobs.position(x) for x in (urgent, a, b)] == [0, 1, 2]
    assert jobs.count_queued() == 3
    claimed = jobs.claim_next("w")
    assert claimed is not None and claimed.id == urgent
    assert jobs.position(urgent) is None
    assert [jobs.position(a), jobs.position(b)] == [0, 1]
    assert jobs.position("missing") is None


def test_list_active_processing_first_then_run_order(jobs: JobStore) -> None:
    a = make(jobs)
    b = make(jobs, priority=2)
    c = make(jobs)
    done = make(jobs, priority=10)
    running = jobs.claim_next("w")
    assert running is not None and running.id == done
    jobs.mark_completed(done, [])
    running_b = jobs.claim_next("w")
    assert running_b is not None and running_b.id == b
    assert [job.id for job in jobs.list_active()] == [b, a, c]


def test_counts_every_status(jobs: JobStore) -> None:
    ids = [make(jobs) for _ in range(5)]
    jobs.cancel_queued(ids[0])
    jobs.mark_failed(ids[1], "bad")
    first = jobs.claim_next("w")
    assert first is not None
    jobs.mark_completed(first.id, [{"seed": 1}])
    jobs.claim_next("w")
    assert jobs.counts() == {
        "queued": 1,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }


def test_set_priority_only_while_queued(jobs: JobStore) -> None:
    a = make(jobs)
    b = make(jobs)
    updated = jobs.set_priority(b, 4)
    assert updated is not None and updated.priority == 4
    assert jobs.position(b) == 0 and jobs.position(a) == 1
    jobs.claim_next("w")
    assert jobs.set_priority(b, 1) is None
    assert jobs.set_priority("missing", 1) is None


def test_cancel_queued(jobs: JobStore) -> None:
    a = make(jobs)
    b = make(jobs)
    assert jobs.cancel_queued(a)
    job = jobs.get(a)
    assert job is not None and job.status == "cancelled" and job.completed_at is not None
    assert not jobs.cancel_queued(a)
    jobs.claim_next("w")
    assert not jobs.cancel_queued(b)


def test_mark_cancelled_running_job(jobs: JobStore) -> None:
    job_id = make(jobs)
    jobs.claim_next("w")
    record = jobs.mark_cancelled(job_id, "cancelled by the user")
    assert record is not None and record.status == "cancelled"
    assert record.error == "cancelled by the user"
    # A finished job keeps its final state.
    assert jobs.mark_completed(job_id, [{"seed": 1}]) is None
    final = jobs.get(job_id)
    assert final is not None and final.status == "cancelled"


def test_mark_completed_stores_results(jobs: JobStore) -> None:
    job_id = make(jobs)
    assert jobs.mark_completed(job_id, []) is None  # not processing yet
    jobs.claim_next("w")
    results = [{"seed": 11, "path": "a.png"}, {"seed": 12, "path": "b.png"}]
    record = jobs.mark_completed(job_id, results)
    assert record is not None and record.status == "completed"
    stored = jobs.get(job_id)
    assert stored is not None and stored.results == results and stored.completed_at is not None


def test_mark_failed(jobs: JobStore) -> None:
    job_id = make(jobs)
    jobs.claim_next("w")
    record = jobs.mark_failed(job_id, "worker killed by signal 9")
    assert record is not None and record.status == "failed"
    assert record.error == "worker killed by signal 9"
    assert jobs.mark_failed(job_id, "again") is None


def test_requeue_keeps_last_error_and_counts_attempts(jobs: JobStore) -> None:
    first = make(jobs)
    second = make(jobs)
    jobs.claim_next("w")
    jobs.update_progress(first, 3, 10)
    record = jobs.requeue(first, "worker killed by signal 9")
    assert record.status == "queued" and record.attempts == 1
    assert record.error == "worker killed by signal 9"
    assert record.worker_id is None and record.current_step == 0
    # It keeps its place: it was inserted first, so it runs first again.
    assert jobs.position(first) == 0 and jobs.position(second) == 1
    jobs.claim_next("w")
    assert jobs.requeue(first, "again").attempts == 2


def test_requeue_leaves_finished_job_alone(jobs: JobStore) -> None:
    job_id = make(jobs)
    jobs.claim_next("w")
    jobs.mark_cancelled(job_id)
    assert jobs.requeue(job_id, "crash").status == "cancelled"
    with pytest.raises(KeyError):
        jobs.requeue("missing", "crash")


def test_release_returns_job_without_counting_an_attempt(jobs: JobStore) -> None:
    first = make(jobs)
    second = make(jobs)
    jobs.claim_next("w")
    jobs.update_progress(first, 2, 4)
    released = jobs.release(first)
    assert released is not None and released.status == "queued"
    assert released.attempts == 0 and released.error is None
    assert released.worker_id is None and released.current_step == 0
    assert jobs.position(first) == 0 and jobs.position(second) == 1
    assert jobs.release(first) is None


def test_update_progress_only_while_processing(jobs: JobStore) -> None:
    job_id = make(jobs)
    jobs.update_progress(job_id, 2, 8)
    queued = jobs.get(job_id)
    assert queued is not None and queued.current_step == 0
    jobs.claim_next("w")
    jobs.update_progress(job_id, 2, 8)
    running = jobs.get(job_id)
    assert running is not None and (running.current_step, running.total_steps) == (2, 8)


def test_delete(jobs: JobStore) -> None:
    job_id = make(jobs)
    deleted = jobs.delete(job_id)
    assert deleted is not None and deleted.id == job_id
    assert jobs.get(job_id) is None
    assert jobs.delete(job_id) is None


def _all_pages(jobs: JobStore, limit: int, **filters: object) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = jobs.history(cursor=cursor, limit=limit, **filters)  # type: ignore[arg-type]
        seen += [job.id for job in page]
        if cursor is None:
            return seen


def test_history_newest_first_in_pages(jobs: JobStore) -> None:
    ids = [make(jobs, prompt=f"p{i}") for i in range(7)]
    page, cursor = jobs.history(limit=3)
    assert [job.id for job in page] == ids[::-1][:3] and cursor is not None
    assert _all_pages(jobs, 3) == ids[::-1]
    assert jobs.history(limit=7)[1] is None


@pytest.mark.parametrize("same_clock", [False, True])
def test_history_cursor_stable_across_inserts(
    jobs: JobStore, monkeypatch: pytest.MonkeyPatch, same_clock: bool
) -> None:
    if same_clock:
        # Equal timestamps make the seq tie-break carry the whole order.
        monkeypatch.setattr(jobs_module.time, "time", lambda: 1000.0)
    ids = [make(jobs) for _ in range(10)]
    page, cursor = jobs.history(limit=4)
    seen = [job.id for job in page]
    new = [make(jobs) for _ in range(5)]
    while cursor is not None:
        page, cursor = jobs.history(cursor=cursor, limit=4)
        seen += [job.id for job in page]
    assert seen == ids[::-1]
    assert not set(new) & set(seen)


def test_history_filters(jobs: JobStore) -> None:
    cat = make(jobs, prompt="A Black CAT on a mat")
    dog = make(jobs, prompt="a dog")
    other, _ = jobs.create({}, model="sdxl", prompt="a cat in space")
    jobs.cancel_queued(dog)
    assert {j.id for j in jobs.history(query="cat")[0]} == {cat, other.id}
    assert [j.id for j in jobs.history(query="BLACK cat")[0]] == [cat]
    assert [j.id for j in jobs.history(status=["cancelled"])[0]] == [dog]
    assert [j.id for j in jobs.history(model="sdxl")[0]] == [other.id]
    assert [j.id for j in jobs.history(model="tiny", query="cat")[0]] == [cat]
    assert jobs.history(query="%")[0] == []
    assert _all_pages(jobs, 1, status=["queued"]) == [other.id, cat]


def test_history_rejects_bad_input(jobs: JobStore) -> None:
    with pytest.raises(InvalidCursorError):
        jobs.history(cursor="not-a-cursor")
    with pytest.raises(InvalidCursorError):
        jobs.history(cursor="WyJ4Il0")  # base64 of ["x"]
    with pytest.raises(ValueError, match="limit"):
        jobs.history(limit=0)
    with pytest.raises(ValueError, match="unknown status"):
        jobs.history(status=["done"])
