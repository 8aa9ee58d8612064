"""One error body for every failure: status, a message saying what to do, and field errors."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from impasto.api.bodies import too_deep_handler, validation_items
from impasto.api.compat.errors import compat_routing
from impasto.api.limits import ClientGone
from impasto.services.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    QueueFullError,
    ServiceError,
    StorageFullError,
    is_disk_full,
)

log = logging.getLogger("impasto.api")


def _body(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return body


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    errors = [{"field": f, "message": m} for f, m in validation_items(exc, request)]
    if not errors:
        return Response(_body(400, f"malformed request: {exc.detail}"), status_code=400)
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Response(_body(422, detail, errors), status_code=422)


def service_handler(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    if is_disk_full(exc):
        return disk_full_handler(request, exc)
    if isinstance(exc, FieldError):
        errors = [{"field": exc.field, "message": exc.message}]
        return Response(_body(422, str(exc), errors), status_code=422)
    if isinstance(exc, QueueFullError):
        return Response(
            _body(429, str(exc)), status_code=429, headers={"Retry-After": str(exc.retry_after)}
        )
    status = (
        404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
    )
    return Response(_body(status, str(exc)), status_code=status)


def http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    compat = compat_routing(request, exc)  # a missing route under /sdapi or /v1, as there
    if compat is not None:
        return compat
    allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow")
    if exc.status_code == 405 and allowed == "websocket":
        return _websocket_only(request)
    if exc.status_code == 500:  # Litestar's own InternalServerException: logged, as any fault
        return internal_handler(request, exc)
    headers = dict(exc.headers or {})
    return Response(
        _body(exc.status_code, str(exc.detail)), status_code=exc.status_code, headers=headers
    )


WEBSOCKET_METHODS = "GET, OPTIONS"  # a WebSocket handshake is a GET with Upgrade


def _websocket_only(request: Request[Any, Any, Any]) -> Response[Any]:
    """An HTTP request to a WebSocket route: OPTIONS lists the handshake's method (204), a
    plain GET or HEAD is told to upgrade (426, RFC 9110), any other method is a 405; Litestar
    answered 405 with ``Allow: websocket``, which is no method."""
    if request.method == "OPTIONS":
        return Response(b"", status_code=204, headers={"Allow": WEBSOCKET_METHODS})
    if request.method in ("GET", "HEAD"):
        detail = "this is a WebSocket endpoint: connect with a WebSocket client (Upgrade)"
        headers = {"Upgrade": "websocket", "Connection": "Upgrade"}
        return Response(_body(426, detail), status_code=426, headers=headers)
    detail = f"{request.method} is not allowed here; a WebSocket handshake is a GET"
    return Response(_body(405, detail), status_code=405, headers={"Allow": WEBSOCKET_METHODS})


def disk_full_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
    detail = "disk full: the daemon cannot record anything; free some disk space and retry"
    return Response(_body(507, detail), status_code=507, headers={"Retry-After": "30"})


def client_gone_handler(request: Request[Any, Any, Any], exc: ClientGone) -> Response[Any]:
    """The client hung up mid-body: its doing, not a fault here, so one debug line; the answer
    goes nowhere (every API shares this handler: no client is left to read its dialect)."""
    log.debug(
        "%s %s: the client disconnected before sending the whole body",
        request.method,
        request.url.path,
    )
    detail = "the client disconnected before sending the whole body"
    return Response(_body(400, detail), status_code=400, headers={"Connection": "close"})


def internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if is_disk_full(exc):  # a file write that got ENOSPC, wherever it happened
        return disk_full_handler(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(_body(500, "internal error; the daemon log has the details"), status_code=500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ValidationException: validation_handler,
    RecursionError: too_deep_handler,
    ClientGone: client_gone_handler,
    ServiceError: service_handler,
    StorageFullError: disk_full_handler,
    HTTPException: http_handler,
    Exception: internal_handler,
}
