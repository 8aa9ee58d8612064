"""Who is calling (authentication) and whether the request may proceed (Host, Origin, token).

The token is enforced by a guard on every route handler, so it is decided on the handler the
router dispatched to, whatever the spelling of the path (``//``, ``/./``, ``%2f``, a trailing
slash). Every handler needs the token unless it is marked public with ``opt={PUBLIC: True}``;
one marked ``opt={SIGNED_URL: True}`` also answers a ``sig`` made for its exact path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRANSPORT_KEY = "impasto.transport"
PUBLIC = "public"  # route handler opt key: this handler answers without a token
# Route handler opt key: this handler also answers a ``sig`` query parameter that
# ``url_signature`` made for the exact path requested (a link that opens one resource only).
SIGNED_URL = "signed_url"
TOKEN_REQUIRED = (
    "a valid token is required: send 'Authorization: Bearer <token>' "
    "(the token is in the daemon's discovery file or your config)"
)
# CORS, for the origins in allowed_origins (a web app served elsewhere): what a preflight
# allows, for how long a browser may keep the answer, and which response headers it may read.
CORS_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_HEADERS = b"Authorization, Content-Type, Idempotency-Key, If-None-Match, Last-Event-ID"
CORS_MAX_AGE = b"600"
CORS_EXPOSED = b"Content-Disposition, ETag, Link, Location, Retry-After, X-Impasto-Upscaler"
# Headers a request must carry at most once: two Hosts (RFC 9112 3.2) or two Origins would
# let the checks here read one value and something further in the other.
SINGLE_HEADERS = (b"host", b"origin")

Scope = dict[str, Any]
# ``name[:port]`` or ``[v6][:port]`` and nothing more: no userinfo '@', no path, no second port.
_HOST = re.compile(r"(?:\[(?P<ip6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::\d{1,5})?")


def _hostname(host: str) -> str | None:
    """The name of a Host header value, or None when it is not a well-formed ``name[:port]``."""
    match = _HOST.fullmatch(host.strip().lower())
    if match is None:
        return None
    return f"[{match['ip6']}]" if match["ip6"] is not None else match["name"]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


@dataclass(frozen=True)
class Authenticator:
    """Finds the caller's token (header, query or HTTP Basic); compares in constant time."""

    token: str

    def presented(self, scope: Scope, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:].strip()).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.split(":", 1)[1] if ":" in decoded else decoded
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("token")
        # Two tokens are no token: which one counts would be a guess.
        return values[0] if values and len(values) == 1 else None

    def authenticated(self, scope: Scope, headers: dict[str, str]) -> bool:
        if not self.token:
            return True
        offered = self.presented(scope, headers)
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    def signed(self, scope: Scope) -> bool:
        """Whether the query's ``sig`` is ``url_signature`` of this very path."""
        if not self.token:
            return True
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sig")
        if not values or len(values) != 1:
            return False
        expected = url_signature(self.token, str(scope.get("path", "")))
        return hmac.compare_digest(values[0].encode(), expected.encode())


def url_signature(token: str, path: str) -> str:
    """A link's capability for one path: handed to clients that fetch a URL without the API
    key (OpenAI's image ``url``), so the URL never carries the token, which opens everything."""
    return hmac.new(token.encode(), b"impasto-url\0" + path.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Policy:
    """Which Host names and Origins are accepted, and which paths need a token."""

    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allowed_origins: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def build(cls, hosts: Iterable[str], origins: Iterable[str]) -> Policy:
        return cls(
            allowed_hosts=frozenset(h.lower() for h in hosts),
            allowed_origins=frozenset(o.lower().rstrip("/") for o in origins),
        )

    def host_allowed(self, host: str | None) -> bool:
        name = _hostname(host) if host else None
        if name is None:
            return False
        return name in LOOPBACK_NAMES or name in self.allowed_hosts or "*" in self.allowed_hosts

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser cross-site request: curl, the CLI, editor plugins
        if self.listed(origin):
            return True
        parts = urlsplit(origin.lower())
        return bool(host) and parts.netloc == (host or "").lower()

    def listed(self, origin: str) -> bool:
        """Whether ``origin`` is one of allowed_origins: another site the user let in, whose
        pages the browser lets read answers only with CORS headers."""
        return origin.lower().rstrip("/") in self.allowed_origins


def token_guard(auth: Authenticator) -> Any:
    """A Litestar guard: every handler not marked public needs the token (deny by default)."""

    def require_token(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        scope = cast(Scope, connection.scope)
        if handler.opt.get(PUBLIC) or auth.authenticated(scope, _headers(scope)):
            return
        if handler.opt.get(SIGNED_URL) and auth.signed(scope):
            return
        raise NotAuthorizedException(
            TOKEN_REQUIRED, headers={"WWW-Authenticate": 'Bearer realm="impasto"'}
        )

    return require_token


class SecurityMiddleware:
    """Pure ASGI: rejects foreign Hosts (DNS rebinding) and foreign Origins before routing."""

    def __init__(self, app: Any, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        repeated = _repeated(scope, SINGLE_HEADERS)
        if repeated:
            await _reject(scope, send, 400, f"the request has more than one {repeated} header")
            return
        headers = _headers(scope)
        host = headers.get("host")
        over_socket = scope.get(TRANSPORT_KEY) == "unix"
        if not over_socket and not self.policy.host_allowed(host):
            await _reject(
                scope, send, 403, f"Host {host!r} is not allowed; add it to allowed_hosts"
            )
            return
        is_ws = scope["type"] == "websocket"
        if (is_ws or scope.get("method") in STATE_CHANGING) and not self.policy.origin_allowed(
            headers.get("origin"), host
        ):
            await _reject(
                scope, send, 403, "cross-origin request refused; add the origin to allowed_origins"
            )
            return
        origin = headers.get("origin")
        if scope["type"] == "http" and origin is not None and self.policy.listed(origin):
            if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                await _preflight(send, origin)  # before the token: a preflight never has one
                return
            send = _with_cors(send, origin)
        await self.app(scope, receive, send)


def _repeated(scope: Scope, names: tuple[bytes, ...]) -> str | None:
    """The first of ``names`` (lower case) the request carries more than once, or None."""
    seen = [k.lower() for k, _ in scope.get("headers", []) if k.lower() in names]
    return next((n.decode().title() for n in names if seen.count(n) > 1), None)


def _cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]


async def _preflight(send: Any, origin: str) -> None:
    """A CORS preflight's answer for a listed origin: what its page may send."""
    headers = [
        *_cors_headers(origin),
        (b"access-control-allow-methods", CORS_METHODS),
        (b"access-control-allow-headers", CORS_HEADERS),
        (b"access-control-max-age", CORS_MAX_AGE),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def _with_cors(send: Any, origin: str) -> Any:
    """``send`` with the CORS headers added to the response's start."""

    async def sending(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            extra = [*_cors_headers(origin), (b"access-control-expose-headers", CORS_EXPOSED)]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending


async def _reject(scope: Scope, send: Any, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status, "reason": detail[:120]})
        return
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def mark_transport(app: Any, transport: str) -> Any:
    """Wrap an ASGI app so every scope records which listener it came in on."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, TRANSPORT_KEY: transport}
        await app(scope, receive, send)

    return wrapped
