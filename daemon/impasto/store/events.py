"""The event log: live events with a sequence number, kept for replay across restarts."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from impasto.store.db import Database

MAX_SINCE_LIMIT = 10_000


@dataclass(frozen=True)
class Event:
    """One event; ``seq`` only grows, even across daemon restarts and trims."""

    seq: int
    type: str
    job_id: str | None
    data: dict[str, Any]
    time: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Event:
        """Build an event from an ``events`` row."""
        return cls(row["seq"], row["type"], row["job_id"], json.loads(row["data"]), row["time"])


class EventLog:
    """Append events and read back the ones a reconnecting client missed."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, type: str, job_id: str | None, data: dict[str, Any]) -> Event:
        """Store an event and return it with its new sequence number."""
        rows = self.db.execute(
            "INSERT INTO events (type, job_id, data, time) VALUES (?, ?, ?, ?) RETURNING *",
            (type, job_id, json.dumps(data), time.time()),
        )
        return Event.from_row(rows[0])

    def since(self, seq: int, *, job_id: str | None = None, limit: int = 1000) -> list[Event]:
        """Events after ``seq`` in order, optionally for one job only."""
        if not 1 <= limit <= MAX_SINCE_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_SINCE_LIMIT}")
        if job_id is None:
            rows = self.db.execute(
                "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            )
        else:
            rows = self.db.execute(
                "SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (job_id, seq, limit),
            )
        return [Event.from_row(row) for row in rows]

    def last_seq(self) -> int:
        """The highest sequence number ever given out (0 before the first event)."""
        # sqlite_sequence remembers the high-water mark even after every row is trimmed.
        rows = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'")
        return int(rows[0][0]) if rows else 0

    def lost_after(self, seq: int, *, job_id: str | None = None) -> int:
        """How many events after ``seq`` were trimmed before anyone read them back: the
        events from ``seq + 1`` up to the oldest one kept (0 when none were).

        For one job: 0 while its first event (``queued``, the first thing every job says) is
        kept, since nothing of it can be gone then.
        """
        if job_id is not None:
            rows = self.db.execute(
                "SELECT 1 FROM events WHERE job_id = ? AND type = 'queued' LIMIT 1", (job_id,)
            )
            if rows:
                return 0
        rows = self.db.execute("SELECT MIN(seq) FROM events")
        oldest = rows[0][0] if rows and rows[0][0] is not None else self.last_seq() + 1
        return max(0, int(oldest) - 1 - seq)

    def trim(self, keep: int = 10_000) -> int:
        """Delete all but the newest ``keep`` events; return how many were deleted."""
        if keep < 0:
            raise ValueError("keep must be 0 or more")
        rows = self.db.execute(
            "DELETE FROM events WHERE seq <= ? RETURNING seq", (self.last_seq() - keep,)
        )
        return len(rows)
