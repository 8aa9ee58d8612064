"""One row of the ``jobs`` table as the rest of the daemon reads it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any, cast

from impasto.wire import Status as JobStatus


@dataclass
class JobRecord:
    """One job as stored; ``error`` on a queued job is the error of its last attempt."""

    id: str
    status: JobStatus
    priority: int
    seq: int
    request: dict[str, Any]
    results: list[dict[str, Any]]
    error: str | None
    attempts: int
    idempotency_key: str | None
    model: str
    prompt: str
    current_step: int
    total_steps: int
    worker_id: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    completed_at: float | None
    plan: dict[str, Any] | None = None
    """The resolved plan (every default filled in); None on jobs from before plans."""
    warnings: list[str] = field(default_factory=list)
    """What the completed job warned about (a LoRA that matched nothing, ...)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        """Build a record from a ``jobs`` row."""
        return cls(
            id=row["id"],
            status=cast(JobStatus, row["status"]),
            priority=row["priority"],
            seq=row["seq"],
            request=json.loads(row["request"]),
            results=json.loads(row["results"]),
            error=row["error"],
            attempts=row["attempts"],
            idempotency_key=row["idempotency_key"],
            model=row["model"],
            prompt=row["prompt"],
            current_step=row["current_step"],
            total_steps=row["total_steps"],
            worker_id=row["worker_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            plan=json.loads(row["plan"]) if row["plan"] else None,
            warnings=json.loads(row["warnings"]),
        )
