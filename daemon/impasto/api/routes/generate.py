"""Jobs: submit, read, cancel, reprioritise, delete; and the plan a request would run."""

from __future__ import annotations

import asyncio
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, HeaderParameter, JSONBody

from impasto.api.bodies import check_depth
from impasto.api.convert import job_status
from impasto.api.dependencies import Jobs
from impasto.api.limits import RATE_LIMITED
from impasto.wire import (
    GenerateRequest,
    GenerationStatus,
    PriorityUpdate,
    QueuedResponse,
    ResolvedPlan,
)


class GenerateController(Controller):
    path = "/generate"
    tags = ["generation"]

    @post(
        "/",
        status_code=202,
        summary="Queue a generation",
        opt={RATE_LIMITED: True},
        responses={
            200: ResponseSpec(
                QueuedResponse,
                description="The job an earlier request with this Idempotency-Key made",
            )
        },
    )
    async def submit(
        self,
        jobs: Jobs,
        data: JSONBody[GenerateRequest],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[QueuedResponse]:
        check_depth(data.plugins, "plugins")
        job, created = await jobs.submit_async(data, idempotency_key)
        # Counted here on the loop, as the submit's own count of the queue (at most max_queue
        # entries): after an await a worker could have claimed the job (no position then).
        body = QueuedResponse(id=job.id, status=job.status, position=jobs.position(job.id))
        return Response(body, status_code=202 if created else 200)

    @post("/plan", status_code=200, summary="The resolved plan a request would run (no job)")
    async def plan(self, jobs: Jobs, data: JSONBody[GenerateRequest]) -> ResolvedPlan:
        check_depth(data.plugins, "plugins")
        return await asyncio.to_thread(jobs.plan, data)  # plugins, images, model folders

    @get("/{job_id:str}", summary="A job's status and results")
    async def status(self, jobs: Jobs, job_id: FromPath[str]) -> GenerationStatus:
        return job_status(jobs.get(job_id), await jobs.position_async(job_id))

    @post("/{job_id:str}/cancel", status_code=200, summary="Cancel a queued or running job")
    async def cancel(self, jobs: Jobs, job_id: FromPath[str]) -> GenerationStatus:
        return job_status(await jobs.cancel(job_id), await jobs.position_async(job_id))

    @patch("/{job_id:str}", summary="Change a queued job's priority")
    async def reprioritise(
        self, jobs: Jobs, job_id: FromPath[str], data: JSONBody[PriorityUpdate]
    ) -> GenerationStatus:
        job = jobs.set_priority(job_id, data.priority)
        return job_status(job, await jobs.position_async(job_id))

    @delete("/{job_id:str}", status_code=204, summary="Delete a finished job and its images")
    async def remove(self, jobs: Jobs, job_id: FromPath[str]) -> None:
        await jobs.delete_async(job_id)  # removing the images is file I/O
