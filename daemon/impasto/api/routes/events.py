"""The event stream over Server-Sent Events and WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, WebSocket, get, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromQuery, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from impasto.api.dependencies import Bus, Jobs
from impasto.api.limits import EVENT_STREAM
from impasto.api.openapi_doc import ALSO_ANSWERS, EVENT_STREAM_MEDIA, EventStream
from impasto.api.params import ranged
from impasto.services.errors import FieldError, NotFoundError
from impasto.services.events import CloseReason
from impasto.wire import EVENT_TYPES, FIELD_RULES, SEQ_MAX, Event, EventSeq

HEARTBEAT = 15.0
POLICY_VIOLATION = 1008  # WebSocket close code for a request the server will not serve
GOING_AWAY = 1001  # the daemon is stopping
TRY_AGAIN_LATER = 1013  # the client fell behind: it reconnects with since
# Only the client knows the last event it handled (frames in flight may not have reached it).
OVERFLOW_REASON = "fell behind; reconnect with since=<the last seq you got>"
EMPTY_JOB = "is empty: give a job's id, or leave job out to follow every job"


def _since(since: int | None, last_event_id: str | None) -> int | None:
    """Where a stream starts: after the later of ``since`` and ``Last-Event-ID``. An
    EventSource reconnects to the URL it was opened with (``?since=0``, say) and sends the
    last id it got: it resumes there instead of receiving everything again."""
    last = None
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        last = min(int(last_event_id[:20]), SEQ_MAX)
    if since is None or last is None:
        return last if since is None else since
    return max(since, last)


def _check_job(jobs: Any, job: str | None) -> None:
    """Refuse a ``job`` filter that names no job: its stream would stay silent for ever (a
    typo, a deleted job: NotFoundError, 404; an empty one, a URL filled from nothing: 422)."""
    if job == "":
        raise FieldError("job", EMPTY_JOB)
    if job is not None:
        jobs.get(job)


def _query_seq(value: str | None) -> int | str | None:
    """A ``since`` query value as a seq, or the rule it breaks."""
    if value is None:
        return None
    try:
        return msgspec.convert(value, EventSeq, strict=False)  # the SSE route's type and range
    except msgspec.ValidationError:
        return FIELD_RULES["since"]


class EventsController(Controller):
    path = "/"
    tags = ["events"]

    @get(
        "/events",
        summary="Server-Sent Events: queued, started, progress, completed, ...",
        media_type=EVENT_STREAM_MEDIA,
        opt={EVENT_STREAM: True, ALSO_ANSWERS: (EventStream(EVENT_TYPES, (Event,)),)},
    )
    async def sse(
        self,
        bus: Bus,
        jobs: Jobs,
        request: Request[Any, Any, Any],
        since: Annotated[int | None, ranged(EventSeq)] = None,
        job: Annotated[
            str | None,
            QueryParameter(description="Only this job's events (404: no such job; 422: empty)"),
        ] = None,
    ) -> ServerSentEvent:
        _check_job(jobs, job)
        start = _since(since, request.headers.get("last-event-id"))

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            yield ServerSentEventMessage(data=None, comment="connected", retry=1000)
            async for event in bus.stream(start, job, heartbeat=HEARTBEAT):
                if event is None:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                data = msgspec.json.encode(event.to_json()).decode()
                yield ServerSentEventMessage(data=data, event=event.type, id=event.seq)

        return ServerSentEvent(
            messages(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @websocket("/ws", opt={EVENT_STREAM: True})
    async def ws(
        self,
        socket: WebSocket[Any, Any, Any],
        bus: Bus,
        jobs: Jobs,
        since: FromQuery[str | None] = None,
        job: FromQuery[str | None] = None,
    ) -> None:
        await socket.accept()
        start = _query_seq(since)
        # Checked after the handshake: a refused handshake reaches clients as a bare 403, which
        # reads like the Origin check; a close frame carries the reason.
        if isinstance(start, str):
            await socket.close(code=POLICY_VIOLATION, reason=f"since: {start}")
            return
        try:
            _check_job(jobs, job)
        except FieldError as exc:
            await socket.close(code=POLICY_VIOLATION, reason=str(exc))
            return
        except NotFoundError as exc:
            await socket.close(code=POLICY_VIOLATION, reason=f"job: {exc}")
            return

        ended: list[CloseReason] = []

        async def forward() -> None:
            async for event in bus.stream(start, job, HEARTBEAT, ended.append):
                if event is not None:
                    await socket.send_text(msgspec.json.encode(event.to_json()).decode())

        async def watch_close() -> None:
            # Clients send nothing we need; reading is how a close is noticed.
            with contextlib.suppress(WebSocketDisconnect):
                while True:
                    await socket.receive_data(mode="text")

        tasks = [asyncio.create_task(forward()), asyncio.create_task(watch_close())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # A close that only the bus decides says why, so a client tells it from an end.
            code, reason = 1000, ""
            if ended == ["overflow"]:
                code, reason = TRY_AGAIN_LATER, OVERFLOW_REASON
            elif ended == ["shutdown"]:
                code, reason = GOING_AWAY, "the daemon is stopping"
            with contextlib.suppress(Exception):
                await socket.close(code=code, reason=reason)
