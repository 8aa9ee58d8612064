"""Security headers on every HTTP response: the UI and the docs may not be framed or sniffed.

The UI (ui_static/) and the docs page load only their own scripts, styles and images, talk
only to this daemon (fetch, EventSource, WebSocket), show previews as ``data:`` URLs and
masks as ``blob:`` URLs, and run no inline script, so the policy allows exactly that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)


Headers = list[tuple[bytes, bytes]]


def editing_headers(send: Any, edit: Callable[[Headers], Headers]) -> Any:
    """``send`` with ``edit`` applied to the headers of the response's start message."""

    async def edited(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": edit(list(message.get("headers", [])))}
        await send(message)

    return edited


def _with_security_headers(headers: Headers) -> Headers:
    present = {bytes(name).lower() for name, _ in headers}
    return headers + [(k, v) for k, v in SECURITY_HEADERS if k not in present]


class SecurityHeadersMiddleware:
    """Pure ASGI: adds SECURITY_HEADERS to each HTTP response that does not set them itself."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, editing_headers(send, _with_security_headers))
