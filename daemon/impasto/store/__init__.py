"""Persistence on stdlib sqlite3: the job queue, the history and the event log."""

from impasto.store.cursors import InvalidCursorError
from impasto.store.db import Database, DatabaseError, open_database
from impasto.store.events import Event, EventLog
from impasto.store.job_record import JobRecord, JobStatus
from impasto.store.jobs import JobStore

__all__ = [
    "Database",
    "DatabaseError",
    "Event",
    "EventLog",
    "InvalidCursorError",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "open_database",
]
