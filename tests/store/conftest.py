"""Fixtures for the store tests: a real SQLite file in a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from impasto.store import Database, EventLog, JobStore, open_database


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "impasto.db"


@pytest.fixture
def db(db_path: Path) -> Iterator[Database]:
    database = open_database(db_path)
    yield database
    database.close()


@pytest.fixture
def jobs(db: Database) -> JobStore:
    return JobStore(db)


@pytest.fixture
def events(db: Database) -> EventLog:
    return EventLog(db)
