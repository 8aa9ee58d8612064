"""GET /queue pages through a long queue with correct positions, and stays answerable."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from impasto.store.db import open_database
from impasto.store.jobs import JobStore
from tests.harness import Daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("queue"), workers=1, rate_limit=0).start()
    with running.client() as c:
        assert c.post("/api/v1/queue/pause").json() == {"paused": True}
    yield running
    running.stop()


def test_pages_cover_the_queue_in_run_order_with_positions(daemon: Daemon) -> None:
    with daemon.client() as c:
        ids = []
        for i in range(25):
            body = {"prompt": f"job {i}", "steps": 1, "priority": i % 3}
            ids.append(c.post("/api/v1/generate", json=body).json()["id"])
        seen: list[dict] = []
        offset: int | None = 0
        while offset is not None:
            page = c.get("/api/v1/queue", params={"limit": 7, "offset": offset}).json()
            assert set(page) >= {"paused", "items", "total", "next_offset"}
            assert page["total"] == 25 and len(page["items"]) <= 7
            seen += page["items"]
            offset = page["next_offset"]
        assert sorted(j["id"] for j in seen) == sorted(ids)
        # Run order: higher priority first, then first come first served; positions 0..24.
        assert [j["position"] for j in seen] == list(range(25))
        keys = [(-j["priority"], ids.index(j["id"])) for j in seen]
        assert keys == sorted(keys)
        for job in seen[::6]:  # the single-job read agrees with the listing
            assert c.get(f"/api/v1/generate/{job['id']}").json()["position"] == job["position"]
        # Without paging parameters: the first page, in the shape older clients read.
        default = c.get("/api/v1/queue").json()
        assert default["paused"] is True and len(default["items"]) == 25
        # The history shows the same positions (one query for the page).
        history = c.get("/api/v1/history", params={"status": "queued", "limit": 50}).json()
        by_id = {j["id"]: j["position"] for j in seen}
        assert all(item["position"] == by_id[item["id"]] for item in history["items"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "x"}])
def test_bad_paging_parameters_name_the_field(daemon: Daemon, params: dict) -> None:
    with daemon.client() as c:
        answer = c.get("/api/v1/queue", params=params)
    assert answer.status_code in (400, 422)
    assert next(iter(params)) in answer.text


def test_queue_reads_never_sort_the_whole_queue(tmp_path: Path) -> None:
    """Every statement a page or a position runs uses an index for its order (no temp sort)."""
    db = open_database(tmp_path / "q.db")
    store = JobStore(db)
    for i in range(30):
        store.create({}, model="m", prompt="p", priority=i % 3)
    claimed = store.claim_next("w")
    assert claimed is not None
    statements: list[str] = []
    db._connection.set_trace_callback(statements.append)
    page = store.active_page(limit=10, offset=5)
    first_queued = store.active_page(limit=1, offset=1)[0][0]
    assert store.position(first_queued.id) == 0
    assert store.positions([first_queued.id]) == {first_queued.id: 0}
    store.count_active()
    db._connection.set_trace_callback(None)
    assert [pos for _, pos in page] == list(range(4, 14))
    conn = sqlite3.connect(tmp_path / "q.db")
    # Running jobs are at most one per worker: sorting those is fine.
    reads = {s for s in statements if s.lstrip().upper().startswith("SELECT")}
    for sql in {s for s in reads if "status = 'processing' ORDER BY" not in s}:
        plan = " ".join(str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "TEMP B-TREE FOR ORDER BY" not in plan, (sql, plan)
        assert "SCAN jobs" not in plan or "INDEX" in plan, (sql, plan)
    conn.close()
    db.close()
