"""A scripted fake daemon behind httpx.MockTransport, and helpers to speak SSE."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

Chunk = bytes | Exception | Callable[[], bytes | Exception]


def sse_message(event: dict[str, Any]) -> bytes:
    """One SSE message the way the daemon frames an event."""
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()


def event(seq: int, type: str, job_id: str | None = "job-1", **data: Any) -> dict[str, Any]:
    """An event as the daemon sends it."""
    return {
        "seq": seq,
        "type": type,
        "job_id": job_id,
        "time": "2025-01-01T00:00:00.000Z",
        "data": data,
    }


def job(job_id: str = "job-1", status: str = "queued", **fields: Any) -> dict[str, Any]:
    """A GenerationStatus body."""
    body: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "progress": 0.0,
        "current_step": 0,
        "total_steps": 4,
        "position": 0 if status == "queued" else None,
        "priority": 0,
        "attempts": 0,
        "request": {"prompt": "a cat"},
        "results": [],
        "error": None,
        "created_at": "2025-01-01T00:00:00.000Z",
        "started_at": None,
        "completed_at": None,
    }
    body.update(fields)
    return body


class FakeDaemon:
    """Answers the API from ``jobs``; each SSE connection plays the next script in ``streams``.

    A script item is bytes to send, an exception to raise there (a dropped connection), or a
    callable run when the stream reaches it (to change a job then) returning either. A script
    that is an exception fails the connection itself (httpx.ConnectError: nothing listens);
    one that is a Response is the daemon's answer instead of a stream (a refusal).
    """

    def __init__(self, *, asynchronous: bool = False) -> None:
        self.asynchronous = asynchronous
        self.requests: list[httpx.Request] = []
        self.jobs: dict[str, dict[str, Any]] = {}
        self.streams: list[list[Chunk] | Exception | httpx.Response] = []
        self.stream_params: list[dict[str, str]] = []
        self.routes: dict[tuple[str, str], httpx.Response] = {}

    def transport(self) -> httpx.MockTransport:
        """The MockTransport to hand to Client/AsyncClient."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Route one request."""
        self.requests.append(request)
        path = request.url.path
        fixed = self.routes.get((request.method, path))
        if fixed is not None:
            return fixed
        if path == "/api/v1/events":
            return self._events(request)
        found = re.fullmatch(r"/api/v1/generate/([^/]+)", path)
        if found and request.method == "GET":
            body = self.jobs.get(found.group(1))
            if body is None:
                return httpx.Response(404, json={"status_code": 404, "detail": "no such job"})
            return httpx.Response(200, json=body)
        return httpx.Response(404, json={"status_code": 404, "detail": f"no route {path}"})

    def _events(self, request: httpx.Request) -> httpx.Response:
        self.stream_params.append(dict(request.url.params))
        script = self.streams.pop(0) if self.streams else [httpx.ReadError("no more scripts")]
        if isinstance(script, Exception):  # the connection itself fails (a stopped daemon)
            raise script
        if isinstance(script, httpx.Response):  # the daemon refuses the stream
            return script
        headers = {"Content-Type": "text/event-stream"}
        if self.asynchronous:
            return httpx.Response(200, headers=headers, content=_async_play(script))
        return httpx.Response(200, headers=headers, content=_play(script))


def _play(script: list[Chunk]) -> Iterator[bytes]:
    for item in script:
        played = item() if callable(item) else item
        if isinstance(played, Exception):
            raise played
        yield played


async def _async_play(script: list[Chunk]) -> AsyncIterator[bytes]:
    for item in script:
        played = item() if callable(item) else item
        if isinstance(played, Exception):
            raise played
        yield played
