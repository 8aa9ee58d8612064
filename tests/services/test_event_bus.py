"""The event bus on a real SQLite event log: replay pages off the event loop, in order, once."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from impasto.services.events import EventBus, LiveEvent
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


def _read_until_idle(bus: EventBus, since: int, job: str | None = None) -> list[LiveEvent]:
    async def read() -> list[LiveEvent]:
        seen: list[LiveEvent] = []
        stream = bus.stream(since=since, job_id=job, heartbeat=0.05)
        async for event in stream:
            if event is None:
                break
            seen.append(event)
        await stream.aclose()
        return seen

    return asyncio.run(read())


def _kinds(events: list[LiveEvent]) -> list[tuple[int, str]]:
    return [(e.seq, e.type) for e in events]


def test_a_replay_past_trimmed_events_starts_with_a_gap(tmp_path: Path) -> None:
    """A client back after the log trimmed what it missed hears so (a ``gap`` event saying how
    many are gone) instead of a replay that silently starts later."""
    db = open_database(tmp_path / "impasto.db")
    log = EventLog(db)
    bus = EventBus(log, keep=5)
    bus.TRIM_EVERY = 10
    bus.publish("queued", "old", {})
    for step in range(9):  # the 10th event trims the log down to the newest 5
        bus.publish("progress", "old", {"step": step})
    bus.publish("queued", "new", {})
    assert [e.seq for e in log.since(0)] == [6, 7, 8, 9, 10, 11]

    replay = _read_until_idle(bus, since=2)
    progress = [(seq, "progress") for seq in range(6, 11)]
    assert _kinds(replay) == [(5, "gap"), *progress, (11, "queued")]
    assert replay[0].data == {"since": 2, "lost": 3}
    # Nothing lost after a seq the log still holds, or for a job whose first event is kept.
    assert _kinds(_read_until_idle(bus, since=5))[0] == (6, "progress")
    assert _kinds(_read_until_idle(bus, since=0, job="new")) == [(11, "queued")]
    # A job whose start was trimmed has lost events: its stream says so too.
    assert _kinds(_read_until_idle(bus, since=0, job="old"))[0] == (5, "gap")
    db.close()
