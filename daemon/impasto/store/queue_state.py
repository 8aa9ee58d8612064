"""The queue's own state across restarts, over the ``queue_state`` table: whether it is paused."""

from __future__ import annotations

from impasto.store.db import Database


class QueueState:
    """The queue's flags, kept in the database so a restart keeps them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def paused(self) -> bool:
        """Whether the queue was left paused."""
        rows = self.db.execute("SELECT value FROM queue_state WHERE key = 'paused'")
        return bool(rows) and rows[0][0] == "1"

    def set_paused(self, paused: bool) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_state (key, value) VALUES ('paused', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                ("1" if paused else "0",),
            )
