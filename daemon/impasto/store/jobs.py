"""The persistent job queue and history over the ``jobs`` table."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from impasto.store.cursors import decode_cursor, encode_cursor
from impasto.store.db import Database
from impasto.store.job_record import JobRecord, JobStatus
from impasto.store.queue_state import QueueState
from impasto.wire import STATUSES

MAX_HISTORY_LIMIT = 500
PRUNE_BATCH = 500  # finished jobs one statement of :meth:`JobStore.prune_history` deletes

# The run order of the queue: higher priority first, then first come first served.
_RUN_ORDER = "priority DESC, seq ASC"
# The partial index of queued jobs in run order. Named explicitly: without statistics SQLite
# picks jobs_status and sorts every queued row, which made queue reads grow with the queue.
_QUEUED = "jobs INDEXED BY jobs_run_order WHERE status = 'queued'"


class JobStore:
    """Jobs: create, claim in run order, move through their states, page the history."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue_state = QueueState(db)

    def create(
        self,
        request: dict[str, Any],
        *,
        model: str,
        prompt: str,
        priority: int = 0,
        idempotency_key: str | None = None,
        total_steps: int = 0,
        plan: dict[str, Any] | None = None,
        request_hash: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Queue a job; a known idempotency key returns the existing job and ``False``
        (``request_hash``: the digest of the request the key came with)."""
        now = time.time()
        with self.db.transaction() as conn:
            # The UNIQUE index settles races between connections; DO NOTHING lets us
            # return the winner instead of raising.
            row = conn.execute(
                "INSERT INTO jobs (id, status, priority, request, idempotency_key, model, prompt,"
                " total_steps, created_at, updated_at, plan, request_hash)"
                " VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING *",
                (
                    str(uuid.uuid4()),
                    priority,
                    json.dumps(request),
                    idempotency_key,
                    model,
                    prompt,
                    total_steps,
                    now,
                    now,
                    json.dumps(plan) if plan is not None else None,
                    request_hash,
                ),
            ).fetchone()
            if row is not None:
                return JobRecord.from_row(row), True
            existing = conn.execute(
                "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
        return JobRecord.from_row(existing), False

    def by_idempotency_key(self, key: str) -> tuple[JobRecord, str | None] | None:
        """The job made with this Idempotency-Key and the digest of its request, or None."""
        rows = self.db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,))
        return (JobRecord.from_row(rows[0]), rows[0]["request_hash"]) if rows else None

    def get(self, job_id: str) -> JobRecord | None:
        """The job with this id, or ``None``."""
        return self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def claim_next(self, worker_id: str) -> JobRecord | None:
        """Atomically take the first queued job in run order for ``worker_id``."""
        now = time.time()
        # One statement: SQLite takes the write lock before the subquery reads, so two
        # workers (threads or processes) can never claim the same job.
        return self._one(
            "UPDATE jobs SET status = 'processing', worker_id = ?, started_at = ?,"
            " updated_at = ?, current_step = 0"
            f" WHERE seq = (SELECT seq FROM {_QUEUED} ORDER BY {_RUN_ORDER} LIMIT 1)"
            " RETURNING *",
            (worker_id, now, now),
        )

    def position(self, job_id: str) -> int | None:
        """The job's 0-based place among queued jobs in run order; ``None`` if not queued."""
        # Two range counts on the run-order index: the work grows with the jobs ahead only.
        rows = self.db.execute(
            f"SELECT (SELECT COUNT(*) FROM {_QUEUED} AND priority > job.priority)"
            f" + (SELECT COUNT(*) FROM {_QUEUED} AND priority = job.priority AND seq < job.seq)"
            " FROM jobs AS job WHERE job.id = ? AND job.status = 'queued'",
            (job_id,),
        )
        return int(rows[0][0]) if rows else None

    def list_active(self) -> list[JobRecord]:
        """Processing jobs (oldest start first), then queued jobs in run order (all of them)."""
        return [job for job, _ in self.active_page(limit=None)]

    def list_processing(self) -> list[JobRecord]:
        """The running jobs, oldest start first (few: one per worker)."""
        rows = self.db.execute(
            "SELECT * FROM jobs WHERE status = 'processing' ORDER BY started_at, seq"
        )
        return [JobRecord.from_row(row) for row in rows]

    def active_page(
        self, *, limit: int | None = 200, offset: int = 0
    ) -> list[tuple[JobRecord, int | None]]:
        """One page of :meth:`list_active`, each job with its queue position (None if running).

        Positions come from the page's place in run order, so the page costs two indexed
        queries however long the queue is (no per-job COUNT).
        """
        running = self.list_processing()
        page: list[tuple[JobRecord, int | None]] = [(job, None) for job in running[offset:]]
        if limit is not None:
            page = page[:limit]
        want = None if limit is None else limit - len(page)
        if want is None or want > 0:
            start = max(0, offset - len(running))
            rows = self.db.execute(
                f"SELECT * FROM {_QUEUED} ORDER BY {_RUN_ORDER} LIMIT ? OFFSET ?",
                (-1 if want is None else want, start),
            )
            page += [(JobRecord.from_row(row), start + i) for i, row in enumerate(rows)]
        return page

    def count_active(self) -> tuple[int, int]:
        """How many jobs run and how many wait: (processing, queued)."""
        counts = dict.fromkeys(("processing", "queued"), 0)
        for row in self.db.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('processing', 'queued')"
            " GROUP BY status"
        ):
            counts[row[0]] = int(row[1])
        return counts["processing"], counts["queued"]

    def active_ids_using(self, model: str) -> list[str]:
        """Ids of queued or running jobs of ``model``."""
        rows = self.db.execute(
            "SELECT id FROM jobs WHERE status IN ('processing', 'queued') AND model = ?"
            f" ORDER BY status = 'queued', {_RUN_ORDER}",
            (model,),
        )
        return [row[0] for row in rows]

    def positions(self, job_ids: list[str]) -> dict[str, int]:
        """Queue positions of those of ``job_ids`` that are queued, in one query."""
        if not job_ids:
            return {}
        marks = ", ".join("?" * len(job_ids))
        rows = self.db.execute(
            "SELECT id, pos FROM (SELECT id, ROW_NUMBER() OVER"
            f" (ORDER BY {_RUN_ORDER}) - 1 AS pos FROM {_QUEUED})"
            f" WHERE id IN ({marks})",
            job_ids,
        )
        return {row[0]: int(row[1]) for row in rows}

    def count_queued(self) -> int:
        """How many jobs wait to run."""
        return int(self.db.execute(f"SELECT COUNT(*) FROM {_QUEUED}")[0][0])

    def counts(self) -> dict[str, int]:
        """The number of jobs in every status (0 for the empty ones)."""
        result: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for row in self.db.read("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            result[row[0]] = row[1]
        return result

    def set_priority(self, job_id: str, priority: int) -> JobRecord | None:
        """Change a queued job's priority; ``None`` if the job is missing or not queued."""
        return self._one(
            "UPDATE jobs SET priority = ?, updated_at = ? WHERE id = ? AND status = 'queued'"
            " RETURNING *",
            (priority, time.time(), job_id),
        )

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; ``False`` if it is not queued."""
        return self._transition(job_id, "cancelled", ("queued",)) is not None

    def mark_cancelled(self, job_id: str, error: str | None = None) -> JobRecord | None:
        """Record that a queued or running job was cancelled; ``None`` if already finished."""
        return self._transition(job_id, "cancelled", ("queued", "processing"), error=error)

    def mark_completed(
        self, job_id: str, results: list[dict[str, Any]], warnings: list[str] | None = None
    ) -> JobRecord | None:
        """Record a running job's results (and what it warned about); ``None`` if it is no
        longer processing."""
        return self._transition(
            job_id, "completed", ("processing",), results=results, warnings=warnings
        )

    def mark_failed(self, job_id: str, error: str) -> JobRecord | None:
        """Record that a queued or running job failed; ``None`` if already finished."""
        return self._transition(job_id, "failed", ("queued", "processing"), error=error)

    def fail_queued(self, error: str) -> list[str]:
        """Fail every queued job with ``error``; returns their ids in run order."""
        return self._finish_queued("failed", error)

    def cancel_all_queued(self) -> list[str]:
        """Cancel every queued job; returns their ids in run order."""
        return self._finish_queued("cancelled", None)

    def _finish_queued(self, status: JobStatus, error: str | None) -> list[str]:
        """Move every queued job to ``status`` in one statement (a job the worker claims at the
        same moment is either claimed or finished here, never both)."""
        now = time.time()
        rows = self.db.execute(
            "UPDATE jobs SET status = ?, error = ?, completed_at = ?, updated_at = ?"
            " WHERE status = 'queued' RETURNING id, priority, seq",
            (status, error, now, now),
        )
        return [row[0] for row in sorted(rows, key=lambda r: (-r[1], r[2]))]

    def requeue(self, job_id: str, error: str) -> JobRecord:
        """Put a processing job back in the queue after a failed attempt (attempts + 1).

        A job that is no longer processing (cancelled meanwhile) is returned unchanged;
        a missing job raises ``KeyError``.
        """
        row = self._one(
            "UPDATE jobs SET status = 'queued', attempts = attempts + 1, error = ?,"
            " worker_id = NULL, started_at = NULL, current_step = 0, updated_at = ?"
            " WHERE id = ? AND status = 'processing' RETURNING *",
            (error, time.time(), job_id),
        )
        if row is not None:
            return row
        current = self.get(job_id)
        if current is None:
            raise KeyError(job_id)
        return current

    def fail_interrupted(self, job_id: str, error: str) -> JobRecord | None:
        """Fail a processing job whose try a dead worker cut short, counting that try
        (attempts + 1, as ``requeue`` counts each try it puts back); None if it is no longer
        processing."""
        now = time.time()
        return self._one(
            "UPDATE jobs SET status = 'failed', attempts = attempts + 1, error = ?,"
            " completed_at = ?, updated_at = ? WHERE id = ? AND status = 'processing' RETURNING *",
            (error, now, now, job_id),
        )

    def release(self, job_id: str) -> JobRecord | None:
        """Give a processing job back to the queue without counting an attempt (shutdown)."""
        return self._one(
            "UPDATE jobs SET status = 'queued', worker_id = NULL, started_at = NULL,"
            " current_step = 0, updated_at = ? WHERE id = ? AND status = 'processing' RETURNING *",
            (time.time(), job_id),
        )

    def update_progress(self, job_id: str, step: int, total: int) -> None:
        """Record the sampler step of a running job."""
        self.db.execute(
            "UPDATE jobs SET current_step = ?, total_steps = ?, updated_at = ?"
            " WHERE id = ? AND status = 'processing'",
            (step, total, time.time(), job_id),
        )

    def history(
        self,
        *,
        cursor: str | None = None,
        limit: int = 50,
        status: list[str] | None = None,
        model: str | None = None,
        query: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """One page of jobs, newest first, and the cursor of the next page (``None`` at the end).

        ``query`` matches a case-insensitive substring of the prompt.
        """
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_HISTORY_LIMIT}")
        where: list[str] = []
        parameters: list[Any] = []
        if cursor is not None:
            created_at, seq = decode_cursor(cursor)
            where.append("(created_at < ? OR (created_at = ? AND seq < ?))")
            parameters += [created_at, created_at, seq]
        if status:
            unknown = set(status) - set(STATUSES)
            if unknown:
                raise ValueError(f"unknown status {sorted(unknown)[0]!r}; use one of {STATUSES}")
            where.append(f"status IN ({', '.join('?' * len(status))})")
            parameters += status
        if model is not None:
            where.append("model = ?")
            parameters.append(model)
        if query:
            where.append("instr(casefold(prompt), ?) > 0")
            parameters.append(query.casefold())
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.read(  # a search reads every prompt: not on the shared connection
            f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, seq DESC LIMIT ?",
            [*parameters, limit + 1],
        )
        page = [JobRecord.from_row(row) for row in rows[:limit]]
        has_more = len(rows) > limit
        next_cursor = encode_cursor(page[-1].created_at, page[-1].seq) if has_more else None
        return page, next_cursor

    def prune_history(self, keep: int, batch: int = PRUNE_BATCH) -> list[str]:
        """Delete the records of all but the newest ``keep`` finished (completed, failed,
        cancelled) jobs, oldest first; queued and running jobs stay. Returns their ids.

        The newest job to go is found once, on the reading connection; then a statement
        deletes at most ``batch`` rows from the oldest end, so a long history is trimmed in
        short writes that let the event loop's own writes in between (blocking: call it in a
        thread). Their images are not touched.
        """
        if keep < 0:
            raise ValueError("keep must be 0 or more")
        finished = "status IN ('completed', 'failed', 'cancelled')"
        edge = self.db.read(
            f"SELECT created_at, seq FROM jobs INDEXED BY jobs_created WHERE {finished}"
            " ORDER BY created_at DESC, seq DESC LIMIT 1 OFFSET ?",
            (keep,),
        )
        if not edge:
            return []
        created_at, seq = edge[0]
        removed: list[str] = []
        while True:
            rows = self.db.execute(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_created"
                f" WHERE {finished} AND (created_at < ? OR (created_at = ? AND seq <= ?))"
                " ORDER BY created_at, seq LIMIT ?) RETURNING id",
                (created_at, created_at, seq, batch),
            )
            removed += [row[0] for row in rows]
            if len(rows) < batch:
                return removed

    def delete(self, job_id: str) -> JobRecord | None:
        """Remove the job's record and return it; ``None`` if there was none."""
        return self._one("DELETE FROM jobs WHERE id = ? RETURNING *", (job_id,))

    def _transition(
        self,
        job_id: str,
        status: JobStatus,
        allowed_from: tuple[JobStatus, ...],
        *,
        error: str | None = None,
        results: list[dict[str, Any]] | None = None,
        warnings: list[str] | None = None,
    ) -> JobRecord | None:
        now = time.time()
        sets = ["status = ?", "completed_at = ?", "updated_at = ?", "error = ?"]
        parameters: list[Any] = [status, now, now, error]
        if results is not None:
            sets.append("results = ?")
            parameters.append(json.dumps(results))
        if warnings:
            sets.append("warnings = ?")
            parameters.append(json.dumps(warnings))
        return self._one(
            f"UPDATE jobs SET {', '.join(sets)}"
            f" WHERE id = ? AND status IN ({', '.join('?' * len(allowed_from))}) RETURNING *",
            [*parameters, job_id, *allowed_from],
        )

    def _one(self, sql: str, parameters: Any) -> JobRecord | None:
        rows = self.db.execute(sql, parameters)
        return JobRecord.from_row(rows[0]) if rows else None
