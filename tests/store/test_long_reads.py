"""A history search reads every prompt (about half a second over 200,000 jobs): it runs on a
connection of its own, so the short statements the event loop runs meanwhile (a progress
step, an event) do not wait for it and the daemon does not stall while someone searches."""

from __future__ import annotations

import json
import threading
import time
import uuid

from impasto.store import Database, JobStore

JOBS = 200_000


def _fill(db: Database) -> None:
    now = time.time()
    rows = [
        (str(uuid.uuid4()), json.dumps({"prompt": f"p{i}"}), f"a lighthouse at dusk, {i}", now - i)
        for i in range(JOBS)
    ]
    with db.transaction() as conn:
        conn.executemany(
            "INSERT INTO jobs (id, status, priority, request, model, prompt, total_steps,"
            " created_at, updated_at) VALUES (?, 'completed', 0, ?, 'm', ?, 20, ?, ?)",
            [(*row, row[-1]) for row in rows],
        )


def test_a_history_search_does_not_hold_up_other_statements(db: Database, jobs: JobStore) -> None:
    _fill(db)
    searched = threading.Event()

    def search() -> None:
        assert jobs.history(query="no such words", limit=10) == ([], None)
        searched.set()

    started = time.monotonic()
    jobs.history(query="no such words", limit=10)
    alone = time.monotonic() - started
    assert alone > 0.05  # long enough for the check below to mean something

    searcher = threading.Thread(target=search)
    searcher.start()
    time.sleep(alone / 5)  # the search is under way
    job, _ = jobs.create({"prompt": "x"}, model="m", prompt="x")  # what the API does meanwhile
    wrote_during_search = not searched.is_set()
    searcher.join()
    assert wrote_during_search, "the write waited for the search to end"
    assert jobs.get(job.id) is not None
    # The search's own connection sees what the main one committed.
    assert [j.id for j in jobs.history(query="x", limit=1)[0]] == [job.id]
    assert jobs.counts()["queued"] == 1
