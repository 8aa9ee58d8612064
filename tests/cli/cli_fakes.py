"""A fake daemon for CLI tests: one job that progresses and completes over SSE."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from impasto.client import Client

JOB = "11111111-2222-3333-4444-555555555555"


def sse(seq: int, type: str, **data: Any) -> bytes:
    body = {"seq": seq, "type": type, "job_id": JOB, "time": "2025-01-01T00:00:00Z", "data": data}
    return f"id: {seq}\nevent: {type}\ndata: {json.dumps(body)}\n\n".encode()


def status(state: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": JOB,
        "status": state,
        "progress": 0.0,
        "position": 0 if state == "queued" else None,
        "priority": 0,
        "request": {"prompt": "a lighthouse", "model": "sd-tiny", "width": 64, "height": 64},
        "results": [],
        "error": None,
    }
    body.update(fields)
    return body


class CliDaemon:
    """Routes the calls `impasto generate` makes; ``outcome`` picks how the job ends."""

    def __init__(self, outcome: str = "completed", batch: int = 2) -> None:
        self.outcome = outcome
        self.batch = batch
        self.requests: list[httpx.Request] = []
        self.state = "queued"
        self.images = {i: f"PNG-{i}".encode() for i in range(batch)}
        self.interrupt_stream = False
        self.warnings: list[str] = []  # what the finished job's status warns about
        self.overrides: dict[tuple[str, str], httpx.Response] = {}
        self.paused = False  # the queue's state, as GET /queue says it

    def client(self, _args: object = None) -> Client:
        """The `connect` hook handed to impasto.cli.main.main."""
        return Client(transport=httpx.MockTransport(self.handle))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        if key in self.overrides:
            return self.overrides[key]
        if key == ("POST", "/api/v1/generate"):
            return httpx.Response(202, json={"id": JOB, "status": "queued", "position": 0})
        if key == ("GET", "/api/v1/queue"):
            return httpx.Response(200, json={"paused": self.paused, "items": []})
        if key == ("POST", "/api/v1/images"):
            return httpx.Response(201, json={"id": "up-7", "width": 64, "height": 64})
        if key == ("GET", f"/api/v1/generate/{JOB}"):
            return httpx.Response(200, json=self._status())
        if key == ("POST", f"/api/v1/generate/{JOB}/cancel"):
            self.state = "cancelled"
            return httpx.Response(200, json=status("cancelled"))
        if key == ("GET", "/api/v1/events"):
            return httpx.Response(200, content=self._events())
        if request.method == "GET" and request.url.path.startswith(f"/api/v1/images/{JOB}/"):
            index = int(request.url.path.rsplit("/", 1)[1])
            return httpx.Response(200, content=self.images[index])
        return httpx.Response(404, json={"status_code": 404, "detail": "no such thing"})

    def _status(self) -> dict[str, Any]:
        if self.state == "completed":
            results = [
                {
                    "index": i,
                    "url": f"/api/v1/images/{JOB}/{i}",
                    "seed": 100 + i,
                    "width": 64,
                    "height": 64,
                }
                for i in range(self.batch)
            ]
            return status("completed", results=results, progress=1.0, warnings=self.warnings)
        if self.state == "failed":
            return status("failed", error="out of memory: try a smaller size")
        return status(self.state)

    def _events(self) -> Iterator[bytes]:
        yield sse(1, "started")
        yield sse(2, "progress", step=1, total=2, progress=0.5)
        if self.interrupt_stream:
            raise KeyboardInterrupt
        yield sse(3, "progress", step=2, total=2, progress=1.0)
        self.state = self.outcome
        yield sse(4, self.outcome)
