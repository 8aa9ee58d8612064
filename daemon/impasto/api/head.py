"""``HEAD`` on every ``GET`` route, as HTTP requires of a general-purpose server (RFC 9110, 9.1).

Litestar 2 serves ``HEAD`` only where a handler is declared for it (the static files), so
``curl -I``, link checkers and uptime monitors got a 405 from the API. This outermost ASGI layer
runs a ``HEAD`` as the ``GET`` it stands for, through the same checks (token, Host/Origin, rate
limits: they see a ``GET``), sends that answer's status and headers (``Content-Length``,
``ETag`` and ``Content-Type`` included) and no body, and lists ``HEAD`` in every ``Allow`` that
lists ``GET``. A streamed answer (the event stream) is ended after its headers: the handler is
told the client went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

from impasto.api.headers import Headers, editing_headers

_DISCONNECT = {"type": "http.disconnect"}


class HeadAsGet:
    """Pure ASGI: ``HEAD`` answered as ``GET`` without the body; ``HEAD`` added to ``Allow``."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "HEAD":
            await self.app(scope, receive, _with_head_allowed(send))
            return
        finished = asyncio.Event()

        async def headers_only(message: dict[str, Any]) -> None:
            if finished.is_set():
                return
            if message["type"] == "http.response.start":
                await _with_head_allowed(send)(message)
            else:  # a body chunk, or a file to send (the pathsend extension): end, empty
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                finished.set()

        async def until_finished() -> dict[str, Any]:
            if finished.is_set():
                return _DISCONNECT
            incoming = asyncio.ensure_future(receive())
            ended = asyncio.ensure_future(finished.wait())
            done, _ = await asyncio.wait({incoming, ended}, return_when=asyncio.FIRST_COMPLETED)
            if incoming in done:
                ended.cancel()
                message: dict[str, Any] = incoming.result()
                return message
            incoming.cancel()
            return _DISCONNECT

        await self.app({**scope, "method": "GET"}, until_finished, headers_only)


def _with_head_allowed(send: Any) -> Any:
    """``send`` with ``HEAD`` added to an ``Allow`` header that lists ``GET``."""
    return editing_headers(send, _head_in_allow)


def _head_in_allow(headers: Headers) -> Headers:
    return [
        (name, _add_head(value) if bytes(name).lower() == b"allow" else value)
        for name, value in headers
    ]


def _add_head(value: bytes) -> bytes:
    methods = [m.strip() for m in bytes(value).decode("latin-1").split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods).encode("latin-1")
