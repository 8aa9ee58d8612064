"""The queue and the history."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.params import FromQuery, QueryParameter

from impasto.api.convert import job_status
from impasto.api.dependencies import Jobs
from impasto.api.params import comma_list, ranged, read_comma_list
from impasto.wire import (
    STATUSES,
    HistoryPage,
    PageLimit,
    PageOffset,
    PauseState,
    QueueCleared,
    QueueState,
)

QUEUE_PAGE = 100  # jobs per GET /queue page unless limit says otherwise


class QueueController(Controller):
    path = "/queue"
    tags = ["queue"]

    @get("/", summary="Running and queued jobs in run order, a page at a time")
    async def active(
        self,
        jobs: Jobs,
        limit: Annotated[int, ranged(PageLimit)] = QUEUE_PAGE,
        offset: Annotated[int, ranged(PageOffset)] = 0,
    ) -> QueueState:
        # The SQL and the decoding of each job grow with the page: not on the event loop.
        page, total = await asyncio.to_thread(jobs.queue_page, limit, offset)
        items = [job_status(job, position) for job, position in page]
        more = offset + len(items) < total and len(items) == limit
        return QueueState(
            paused=jobs.paused,
            items=items,
            total=total,
            next_offset=offset + len(items) if more else None,
        )

    @post("/pause", status_code=200, summary="Stop starting new jobs")
    async def pause(self, jobs: Jobs) -> PauseState:
        return PauseState(paused=jobs.set_paused(True))

    @post("/resume", status_code=200, summary="Start jobs again")
    async def resume(self, jobs: Jobs) -> PauseState:
        return PauseState(paused=jobs.set_paused(False))

    @post(
        "/clear",
        status_code=200,
        summary="Cancel every queued job (and with running=true the running ones)",
        description="Each job cancelled publishes its `cancelled` event, as a single cancel "
        "does. Running jobs go on unless `running` is true. The answer lists the ids "
        "cancelled: the queued jobs in run order, then the running ones.",
    )
    async def clear(self, jobs: Jobs, running: FromQuery[bool] = False) -> QueueCleared:
        return QueueCleared(cancelled=await jobs.clear(running=running))


class HistoryController(Controller):
    path = "/history"
    tags = ["queue"]

    @get("/", summary="Jobs, newest first, with cursor pagination")
    async def history(
        self,
        jobs: Jobs,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, ranged(PageLimit)] = 50,
        status: Annotated[list[str] | None, comma_list(STATUSES)] = None,
        model: FromQuery[str | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=1000)] = None,
    ) -> HistoryPage:
        wanted = sorted(read_comma_list(status, STATUSES, "status")) or None

        def page() -> tuple[list[Any], str | None, dict[str, int]]:
            # An empty parameter is none (a client that fills a URL template from nothing).
            items, next_cursor = jobs.history(
                cursor=cursor or None, limit=limit, status=wanted, model=model or None, query=q
            )
            queued = [j.id for j in items if j.status == "queued"]
            return items, next_cursor, jobs.positions(queued)

        items, next_cursor, positions = await asyncio.to_thread(page)
        return HistoryPage(
            items=[job_status(j, positions.get(j.id)) for j in items], next_cursor=next_cursor
        )
