"""A daemon over a long life: its history stays bounded when asked, a full queue says which
setting bounds it, and reads whose SQL grows with the queue leave the event loop alone."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from impasto.api.app import create_app
from impasto.services.container import Services
from impasto.services.retention import sweep_uploads_forever
from impasto.store import EventLog
from tests.api.conftest import make_services

TINY = {"prompt": "a red circle", "width": 64, "height": 64, "steps": 1}


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Any]:
    made: list[Services] = []

    def build(**settings: Any) -> Services:
        services = make_services(tmp_path / str(len(made)), **settings)
        made.append(services)
        return services

    yield build
    for services in made:
        services.extra["db"].close()


def _finished(services: Services, count: int) -> list[str]:
    store = services.jobs.store
    ids = []
    for i in range(count):
        job, _ = store.create({}, model="sd-tiny", prompt=f"old {i}")
        store.db.execute("UPDATE jobs SET status = 'completed' WHERE id = ?", (job.id,))
        ids.append(job.id)
    return ids


def test_max_history_trims_the_history_at_start(make: Any) -> None:
    services = make(max_history=3, upload_retention_hours=0)
    ids = _finished(services, 8)

    async def run() -> None:
        sweeper = asyncio.create_task(sweep_uploads_forever(services, 0, every=3600))
        for _ in range(300):  # the first trim runs at once, in a thread
            await asyncio.sleep(0.01)
            if sweeper.done() or services.jobs.store.counts()["completed"] <= 3:
                break
        sweeper.cancel()

    asyncio.run(run())
    with TestClient(app=create_app(services)) as api:
        page = api.get("/api/v1/history", params={"limit": 50}).json()
        assert [job["id"] for job in page["items"]] == ids[:-4:-1]  # the newest three
        assert api.get(f"/api/v1/generate/{ids[0]}").status_code == 404
    # Each removed job has its deleted event, as a DELETE does: a web UI drops it too.
    deleted = [e.job_id for e in EventLog(services.extra["db"]).since(0) if e.type == "deleted"]
    assert deleted == ids[:5]


def test_without_max_history_the_history_is_kept(make: Any) -> None:
    services = make(upload_retention_hours=0)  # max_history 0: all of it
    _finished(services, 5)
    asyncio.run(asyncio.wait_for(sweep_uploads_forever(services, 0, every=3600), 5))
    assert services.jobs.store.counts()["completed"] == 5


def test_a_full_queue_names_the_setting_that_bounds_it(make: Any) -> None:
    services = make(max_queue=1)
    with TestClient(app=create_app(services)) as api:
        assert api.post("/api/v1/generate", json=TINY).status_code == 202
        full = api.post("/api/v1/generate", json=TINY)
    assert full.status_code == 429 and int(full.headers["retry-after"]) > 0
    assert "max_queue" in full.json()["detail"]


class _Recording:
    """The job store, noting each queue-position count run on the event loop's thread."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.on_loop: list[str] = []

    def position(self, job_id: str) -> int | None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            self.on_loop.append(threading.current_thread().name)
        return self._store.position(job_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_jobs_place_in_the_queue_is_counted_off_the_event_loop(make: Any) -> None:
    # The count reads every job ahead: a long queue would stall every other request.
    services = make()
    with TestClient(app=create_app(services)) as api:
        first = api.post("/api/v1/generate", json=TINY).json()["id"]
        last = api.post("/api/v1/generate", json=TINY).json()["id"]
        recording = _Recording(services.jobs.store)
        services.jobs.store = recording
        assert api.get(f"/api/v1/generate/{last}").json()["position"] == 1
        patched = api.patch(f"/api/v1/generate/{last}", json={"priority": 5})
        assert patched.json()["position"] == 0
        assert api.post(f"/api/v1/generate/{first}/cancel").json()["position"] is None
    assert recording.on_loop == []
