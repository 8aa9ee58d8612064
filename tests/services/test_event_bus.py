"""The event bus on a real SQLite event log: replay pages off the event loop, in order, once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from impasto.services.events import EventBus
from impasto.store import EventLog, open_database


class ThreadRecordingLog(EventLog):
    """The real log, noting which threads read it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reader_threads: set[int] = set()

    def since(self, seq: int, *, job_id: str | None = None, limit: int = 1000) -> list:  # type: ignore[override]
        self.reader_threads.add(threading.get_ident())
        return super().since(seq, job_id=job_id, limit=limit)


def test_replay_crosses_pages_in_order_off_the_loop(tmp_path: Path) -> None:
    db = open_database(tmp_path / "impasto.db")
    log = ThreadRecordingLog(db)
    bus = EventBus(log)
    bus.REPLAY_PAGE = 7
    published = [bus.publish("job.progress", "j1", {"step": i}).seq for i in range(30)]

    async def read() -> tuple[list[int], int]:
        loop_thread = threading.get_ident()
        seen: list[int] = []
        stream = bus.stream(since=0, heartbeat=0.05)
        async for event in stream:
            if event is None:  # replay done, nothing live: the heartbeat
                break
            seen.append(event.seq)
            if len(seen) == 10:  # a live event published mid-replay comes once, in order
                published.append(bus.publish("job.progress", "j1", {"step": 99}).seq)
        await stream.aclose()
        return seen, loop_thread

    seen, loop_thread = asyncio.run(read())
    db.close()
    assert seen == published
    assert log.reader_threads and loop_thread not in log.reader_threads
