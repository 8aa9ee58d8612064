"""The queue and the history."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import FromQuery, QueryParameter

from impasto.api.convert import job_status
from impasto.api.dependencies import Jobs
from impasto.services.errors import FieldError
from impasto.wire import HistoryPage, PauseState, QueueState

STATUSES = {"queued", "processing", "completed", "failed", "cancelled"}


class QueueController(Controller):
    path = "/queue"
    tags = ["queue"]

    @get("/", summary="Running and queued jobs in run order")
    async def active(self, jobs: Jobs) -> QueueState:
        items = [job_status(j, jobs.position(j.id)) for j in jobs.list_active()]
        return QueueState(paused=jobs.paused, items=items)

    @post("/pause", status_code=200, summary="Stop starting new jobs")
    async def pause(self, jobs: Jobs) -> PauseState:
        return PauseState(paused=jobs.set_paused(True))

    @post("/resume", status_code=200, summary="Start jobs again")
    async def resume(self, jobs: Jobs) -> PauseState:
        return PauseState(paused=jobs.set_paused(False))


class HistoryController(Controller):
    path = "/history"
    tags = ["queue"]

    @get("/", summary="Jobs, newest first, with cursor pagination")
    async def history(
        self,
        jobs: Jobs,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        status: Annotated[
            str | None, QueryParameter(description="Comma-separated statuses")
        ] = None,
        model: FromQuery[str | None] = None,
        q: Annotated[str | None, QueryParameter(max_length=1000)] = None,
    ) -> HistoryPage:
        wanted = [s for s in (status or "").split(",") if s] or None
        if wanted and not set(wanted) <= STATUSES:
            raise FieldError(
                "status", f"must be a comma-separated list of {', '.join(sorted(STATUSES))}"
            )
        items, next_cursor = jobs.history(
            cursor=cursor, limit=limit, status=wanted, model=model, query=q
        )
        return HistoryPage(
            items=[job_status(j, jobs.position(j.id)) for j in items], next_cursor=next_cursor
        )
