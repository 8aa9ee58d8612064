"""Clearing a long queue reaches the clients following the event stream: its thousands of
``cancelled`` events do not end a stream that keeps reading as one that fell behind."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from impasto.store.db import open_database
from tests.harness import Daemon

JOBS = 3000  # more than a stream's queue holds (2,000 events)


def _fill(database: Path, count: int) -> None:
    """Queue ``count`` jobs straight into the daemon's database (WAL takes a second writer)."""
    db = open_database(database)
    try:
        now = time.time()
        with db.transaction() as conn:
            conn.executemany(
                "INSERT INTO jobs (id, status, priority, request, model, prompt, total_steps,"
                " created_at, updated_at) VALUES (?, 'queued', 0, '{}', 'sd-tiny', ?, 1, ?, ?)",
                [(f"job-{i}", f"prompt {i}", now, now) for i in range(count)],
            )
    finally:
        db.close()


def test_a_reading_client_gets_every_event_of_a_long_clear(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, workers=1, rate_limit=0, max_queue=JOBS).start()
    try:
        with daemon.client() as api:
            assert api.post("/api/v1/queue/pause").status_code == 200
            _fill(daemon.data_dir / "impasto.db", JOBS)
            assert api.get("/api/v1/queue").json()["total"] == JOBS
            cancelled: list[str] = []
            listening, done = threading.Event(), threading.Event()

            def listen() -> None:
                with daemon.client() as client, client.stream("GET", "/api/v1/events") as stream:
                    for line in stream.iter_lines():
                        listening.set()
                        if line.startswith("event: cancelled"):
                            cancelled.append(line)
                            if len(cancelled) == JOBS:
                                break
                done.set()

            threading.Thread(target=listen, daemon=True).start()
            assert listening.wait(10)
            answer = api.post("/api/v1/queue/clear")
            assert len(answer.json()["cancelled"]) == JOBS
            # Ended early (fell behind), the stream would stop short of the clear's events.
            assert done.wait(20) and len(cancelled) == JOBS
    finally:
        daemon.stop()
