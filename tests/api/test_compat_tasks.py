"""The compat APIs' task table (A1111's State) keeps only tasks that can still be asked about."""

from __future__ import annotations

import asyncio

from impasto.services import compat
from impasto.services.container import Services
from impasto.wire import GenerateRequest


def test_a_task_whose_request_never_came_back_is_forgotten_once_its_jobs_are_over(
    services: Services,
) -> None:
    """A streamed OpenAI answer forgets its task when the stream ends; one nobody read never
    ends. The next compat request drops such tasks once their jobs are over, and only those."""
    state = compat.compat_state(services)

    async def scenario() -> tuple[list[str], list[str]]:
        request = GenerateRequest(prompt="a red circle", steps=1)
        abandoned = await compat.submit_all(services, [request, request])
        waiting = await compat.submit_all(services, [request])
        assert set(state.tasks) == {*abandoned, *waiting}
        for job_id in abandoned:
            await services.jobs.cancel(job_id)
        newest = await compat.submit_all(services, [request])
        return waiting, newest

    waiting, newest = asyncio.run(scenario())
    assert set(state.tasks) == {*waiting, *newest}
    assert set(state.started) == {*waiting, *newest}
    assert state.tasks[waiting[0]] == waiting
