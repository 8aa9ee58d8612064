"""Who is calling (authentication) and whether the request may proceed (Host, Origin checks)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
PROTECTED_PREFIXES = ("/api/", "/sdapi/", "/v1/")
PUBLIC_PATHS = frozenset({"/api/v1/health"})
TRANSPORT_KEY = "impasto.transport"

Scope = dict[str, Any]


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


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
        return values[0] if values else None

    def authenticated(self, scope: Scope, headers: dict[str, str]) -> bool:
        if not self.token:
            return True
        offered = self.presented(scope, headers)
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())


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
        if not host:
            return False
        name = _hostname(host)
        return name in LOOPBACK_NAMES or name in self.allowed_hosts or "*" in self.allowed_hosts

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser cross-site request: curl, the CLI, editor plugins
        origin = origin.lower().rstrip("/")
        if origin in self.allowed_origins:
            return True
        parts = urlsplit(origin)
        return bool(host) and parts.netloc == (host or "").lower()

    @staticmethod
    def needs_token(path: str) -> bool:
        return path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS


class SecurityMiddleware:
    """Pure ASGI: rejects foreign Hosts (DNS rebinding), foreign Origins and missing tokens."""

    def __init__(self, app: Any, policy: Policy, authenticator: Authenticator) -> None:
        self.app = app
        self.policy = policy
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
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
        if self.policy.needs_token(scope["path"]) and not self.auth.authenticated(scope, headers):
            await _reject(
                scope,
                send,
                401,
                "a valid token is required: send 'Authorization: Bearer <token>' "
                "(the token is in the daemon's discovery file or your config)",
            )
            return
        await self.app(scope, receive, send)


async def _reject(scope: Scope, send: Any, status: int, detail: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 4000 + status, "reason": detail[:120]})
        return
    body = msgspec.json.encode({"status_code": status, "detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="impasto"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def mark_transport(app: Any, transport: str) -> Any:
    """Wrap an ASGI app so every scope records which listener it came in on."""

    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, TRANSPORT_KEY: transport}
        await app(scope, receive, send)

    return wrapped
