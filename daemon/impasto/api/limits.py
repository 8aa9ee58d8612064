"""Limits that keep one client from starving the others: event streams and the generate rate.

Both are Litestar middleware, so they see the route handler the router chose; a handler opts in
with ``opt={EVENT_STREAM: True}`` or ``opt={RATE_LIMITED: True}``. Refusals are exceptions, so
each API answers in its own error format, with ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from litestar.exceptions import ServiceUnavailableException, TooManyRequestsException

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
