"""EventLog on a real SQLite file: sequence numbers, replay, trimming."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from impasto.store import Event, EventLog, open_database


def test_append_returns_event_with_increasing_seq(events: EventLog) -> None:
    first = events.append("queued", "job-1", {"position": 0})
    second = events.append("progress", "job-1", {"step": 1, "total": 4})
    assert isinstance(first, Event)
    assert (first.type, first.job_id, first.data) == ("queued", "job-1", {"position": 0})
    assert second.seq > first.seq and second.time >= first.time > 0
    assert events.last_seq() == second.seq
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.seq = 99  # type: ignore[misc]


def test_last_seq_starts_at_zero(events: EventLog) -> None:
    assert events.last_seq() == 0
    assert events.since(0) == []


def test_since_replays_in_order_and_filters_by_job(events: EventLog) -> None:
    appended = [events.append("progress", f"job-{i % 2}", {"i": i}) for i in range(6)]
    appended.append(events.append("paused", None, {}))
    assert events.since(0) == appended
    assert events.since(appended[2].seq) == appended[3:]
    assert events.since(0, job_id="job-1") == [e for e in appended if e.job_id == "job-1"]
    assert events.since(appended[1].seq, job_id="job-0") == [appended[2], appended[4]]
    assert events.since(0, limit=2) == appended[:2]
    with pytest.raises(ValueError):
        events.since(0, limit=0)


def test_seq_keeps_increasing_across_restarts(db_path: Path) -> None:
    db = open_database(db_path)
    log = EventLog(db)
    before = [log.append("queued", "a", {}) for _ in range(3)]
    log.trim(keep=0)
    db.close()
    reopened = EventLog(open_database(db_path))
    assert reopened.last_seq() == before[-1].seq
    after = reopened.append("started", "a", {})
    assert after.seq > before[-1].seq
    assert reopened.since(0) == [after]
    reopened.db.close()


def test_events_survive_restart_for_replay(db_path: Path) -> None:
    db = open_database(db_path)
    written = [EventLog(db).append("progress", "a", {"step": i}) for i in range(4)]
    db.close()
    reopened = EventLog(open_database(db_path))
    assert reopened.since(written[1].seq) == written[2:]
    reopened.db.close()


def test_trim_keeps_the_newest(events: EventLog) -> None:
    appended = [events.append("progress", "a", {"i": i}) for i in range(10)]
    assert events.trim(keep=3) == 7
    assert events.since(0) == appended[-3:]
    assert events.trim(keep=3) == 0
    assert events.last_seq() == appended[-1].seq
    with pytest.raises(ValueError):
        events.trim(keep=-1)
