"""Installed-model records and install tasks over the ``models`` and ``installs`` tables."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from impasto.store.db import Database
from impasto.wire import ACTIVE_INSTALL, TERMINAL_STATUSES, InstallStatus, ModelType

# The SQL test for a queued or running install (constants of ours, not input).
_ACTIVE = f"status IN ({', '.join(repr(status) for status in ACTIVE_INSTALL)})"


@dataclass
class ModelRecord:
    """One installed model as the model manager recorded it."""

    id: str
    name: str
    type: ModelType
    path: str
    size: int = 0
    hash: str = ""
    version: str = ""
    description: str = ""
    active: bool = True
    family: str = ""
    precision: str = ""
    source: str = ""
    license: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ModelRecord:
        """Build a record from a ``models`` row."""
        values = dict(row)
        values["active"] = bool(values["active"])
        return cls(**values)


@dataclass
class InstallRecord:
    """One install task: where from, how far along, and how it ended."""

    id: str
    model_id: str
    source: dict[str, Any]
    options: dict[str, Any]
    status: InstallStatus
    stage: str
    bytes_done: int
    bytes_total: int
    error: str | None
    created_at: float
    updated_at: float
    finished_at: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> InstallRecord:
        """Build a record from an ``installs`` row."""
        values = dict(row)
        values["source"] = json.loads(values["source"])
        values["options"] = json.loads(values["options"])
        return cls(**values)


class ModelStore:
    """Model rows and install rows in the daemon's database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def put(self, record: ModelRecord) -> ModelRecord:
        """Insert or replace one model row; timestamps are set here."""
        now = time.time()
        record.created_at = record.created_at or now
        record.updated_at = now
        values = asdict(record)
        values["active"] = int(record.active)
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self.db.execute(
            f"INSERT OR REPLACE INTO models ({columns}) VALUES ({marks})", list(values.values())
        )
        return record

    def get(self, model_id: str) -> ModelRecord | None:
        """The row of ``model_id``, if the manager installed it."""
        rows = self.db.execute("SELECT * FROM models WHERE id = ?", (model_id,))
        return ModelRecord.from_row(rows[0]) if rows else None

    def list_models(self) -> list[ModelRecord]:
        """Every model row, by id."""
        return [
            ModelRecord.from_row(r) for r in self.db.execute("SELECT * FROM models ORDER BY id")
        ]

    def delete(self, model_id: str) -> bool:
        """Forget ``model_id``; False if there was no row."""
        rows = self.db.execute("DELETE FROM models WHERE id = ? RETURNING id", (model_id,))
        return bool(rows)

    def create_install(
        self, model_id: str, source: dict[str, Any], options: dict[str, Any]
    ) -> InstallRecord:
        """A new queued install task."""
        now = time.time()
        install_id = uuid.uuid4().hex[:16]
        rows = self.db.execute(
            "INSERT INTO installs (id, model_id, source, options, status, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, 'queued', ?, ?) RETURNING *",
            (install_id, model_id, json.dumps(source), json.dumps(options), now, now),
        )
        return InstallRecord.from_row(rows[0])

    def get_install(self, install_id: str) -> InstallRecord | None:
        """One install task."""
        rows = self.db.execute("SELECT * FROM installs WHERE id = ?", (install_id,))
        return InstallRecord.from_row(rows[0]) if rows else None

    def list_installs(self, limit: int = 100) -> list[InstallRecord]:
        """Running and recent install tasks, newest first."""
        rows = self.db.execute(
            f"SELECT * FROM installs ORDER BY {_ACTIVE} DESC, created_at DESC LIMIT ?",
            (limit,),
        )
        return [InstallRecord.from_row(r) for r in rows]

    def delete_finished_install(self, install_id: str) -> bool:
        """Forget a completed, failed or cancelled install; False if there was no such row."""
        rows = self.db.execute(
            f"DELETE FROM installs WHERE id = ? AND NOT {_ACTIVE} RETURNING id",
            (install_id,),
        )
        return bool(rows)

    def unfinished_installs(self) -> list[InstallRecord]:
        """Installs a stopped daemon left queued or running, oldest first."""
        rows = self.db.execute(f"SELECT * FROM installs WHERE {_ACTIVE} ORDER BY created_at")
        return [InstallRecord.from_row(r) for r in rows]

    def active_install_for(self, model_id: str) -> InstallRecord | None:
        """The queued or running install that targets ``model_id``."""
        rows = self.db.execute(
            f"SELECT * FROM installs WHERE model_id = ? AND {_ACTIVE}",
            (model_id,),
        )
        return InstallRecord.from_row(rows[0]) if rows else None

    def update_install(self, install_id: str, **changes: Any) -> InstallRecord | None:
        """Set some columns of an install (``source``/``options`` are JSON-encoded here)."""
        changes["updated_at"] = time.time()
        if changes.get("status") in TERMINAL_STATUSES:
            changes["finished_at"] = changes["updated_at"]
        for key in ("source", "options"):
            if key in changes:
                changes[key] = json.dumps(changes[key])
        assignments = ", ".join(f"{key} = ?" for key in changes)
        rows = self.db.execute(
            f"UPDATE installs SET {assignments} WHERE id = ? RETURNING *",
            [*changes.values(), install_id],
        )
        return InstallRecord.from_row(rows[0]) if rows else None
