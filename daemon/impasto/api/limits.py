"""Limits that keep one client from starving the others: event streams, the generate rate and
request bodies (their size, and how long they may stall).

All are Litestar middleware, so they see the route handler the router chose; a handler opts in
with ``opt={EVENT_STREAM: True}`` or ``opt={RATE_LIMITED: True}``. Refusals are exceptions, so
each API answers in its own error format, with ``Retry-After`` where waiting helps.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from litestar.exceptions import (
    HTTPException,
    ServiceUnavailableException,
    TooManyRequestsException,
)

EVENT_STREAM = "event_stream"  # SSE or WebSocket: holds a connection for as long as it is open
RATE_LIMITED = "rate_limited"  # starts work: counted against rate_limit per client
WS_TRY_AGAIN_LATER = 1013
STREAM_RETRY_AFTER = 5

Scope = dict[str, Any]


def _opt(scope: Scope, key: str) -> bool:
    handler = scope.get("route_handler")
    return bool(handler is not None and handler.opt.get(key))


@dataclass
class StreamSlots:
    """How many event streams are open; past ``limit`` new ones are refused until one closes."""

    limit: int
    open: int = 0

    def middleware(self, app: Any) -> Any:
        async def limited(scope: Scope, receive: Any, send: Any) -> None:
            if not _opt(scope, EVENT_STREAM):
                await app(scope, receive, send)
                return
            if self.open >= self.limit:
                await self._refuse(scope, receive, send)
                return
            self.open += 1
            try:
                await app(scope, receive, send)
            finally:
                self.open -= 1

        return limited

    async def _refuse(self, scope: Scope, receive: Any, send: Any) -> None:
        detail = (
            f"too many open event streams ({self.limit}, the max_event_streams setting); "
            "close another tab or client, or raise the limit"
        )
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send(
                {"type": "websocket.close", "code": WS_TRY_AGAIN_LATER, "reason": detail[:120]}
            )
            return
        raise ServiceUnavailableException(detail, headers={"Retry-After": str(STREAM_RETRY_AFTER)})


def client_key(scope: Scope) -> str:
    """One key per connection: loopback clients share an address but not a source port."""
    client = scope.get("client")
    if not client:
        return str(scope.get("impasto.transport", "unknown"))
    host, port = client[0], client[1] if len(client) > 1 else 0
    return f"{host}:{port}"


@dataclass
class RateLimiter:
    """At most ``per_minute`` rate-limited requests per connection in any 60 s window."""

    per_minute: int
    window: float = 60.0
    _hits: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, key: str, now: float) -> int:
        """0 if the request may go ahead (and it is counted), else seconds to wait."""
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.per_minute:
            return max(1, math.ceil(hits[0] + self.window - now))
        hits.append(now)
        if len(self._hits) > 4096:  # forget connections that have gone quiet
            for stale in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                del self._hits[stale]
        return 0

    def middleware(self, app: Any) -> Any:
        async def limited(scope: Scope, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and _opt(scope, RATE_LIMITED):
                wait = self.retry_after(client_key(scope), time.monotonic())
                if wait:
                    detail = (
                        f"rate limited: more than {self.per_minute} generate requests a minute "
                        f"on this connection (the rate_limit setting); retry in {wait} s"
                    )
                    raise TooManyRequestsException(detail, headers={"Retry-After": str(wait)})
            await app(scope, receive, send)

        return limited


class ClientGone(Exception):
    """The client hung up before it had sent the whole request body: nobody is left to answer,
    and nothing went wrong on this side (the error handlers log one debug line, no traceback)."""


def _body_framing(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request has a body (a ``Content-Length`` above 0 or chunked) and its
    announced length, if any."""
    length: int | None = None
    chunked = False
    for name, value in scope.get("headers", []):
        key = bytes(name).lower()
        if key == b"transfer-encoding":
            chunked = True
        elif key == b"content-length" and bytes(value).strip().isdigit():
            length = int(value)
    return chunked or bool(length), length


@dataclass(frozen=True)
class BodyLimits:
    """Every request body is bounded here, where it is received, in time and in size.

    ``timeout``: seconds the body may send nothing (nginx's ``client_body_timeout``). granian's
    header timeout ends with the headers, so a client that stalled mid-body held its connection
    slot for ever; past ``timeout`` it is answered 408 and the connection closed. ``max_size``:
    bytes, announced (``Content-Length``) or sent; past it a 413 naming the setting. Both are
    checked as the route reads the body, so the token guard still answers first.
    """

    timeout: float
    max_size: int

    def middleware(self, app: Any) -> Any:
        async def bounded(scope: Scope, receive: Any, send: Any) -> None:
            has_body, announced = _body_framing(scope) if scope["type"] == "http" else (False, None)
            if not has_body:  # no deadline on a bodiless request's wait for a hang-up (streams)
                await app(scope, receive, send)
                return
            await app(scope, self._receiving(announced, receive), send)

        return bounded

    def _too_large(self, size: str) -> HTTPException:
        detail = (
            f"the request body is {size}; the limit is {self.max_size} bytes (the max_body_size "
            "setting): send less, or raise max_body_size"
        )
        return HTTPException(status_code=413, detail=detail, headers={"Connection": "close"})

    def _receiving(self, announced: int | None, receive: Any) -> Any:
        received = 0
        complete = False

        async def receive_in_time() -> dict[str, Any]:
            nonlocal received, complete
            if complete:  # after the body the app waits for a hang-up (streams): no deadline
                message: dict[str, Any] = await receive()
                return message
            if announced is not None and announced > self.max_size:
                raise self._too_large(f"{announced} bytes (its Content-Length)")
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except TimeoutError:
                detail = (
                    f"the request body stalled: nothing arrived for {self.timeout:g} s (the "
                    "body_timeout setting), so the connection is closed; send the whole body "
                    "without pausing"
                )
                raise HTTPException(
                    status_code=408, detail=detail, headers={"Connection": "close"}
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientGone
            received += len(message.get("body", b""))
            if received > self.max_size:
                raise self._too_large(f"over {self.max_size} bytes")
            complete = not message.get("more_body", False)
            return message

        return receive_in_time
