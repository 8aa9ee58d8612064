"""Error bodies in the dialect each compatible API's clients parse.

AUTOMATIC1111 answers its own failures with ``{"error", "detail", "body", "errors"}`` and bad
request bodies with FastAPI's 422 ``{"detail": [{"loc", "msg", "type"}]}`` (here with the other
three keys too, so clients of either shape read it); a route or method that does not exist gets
FastAPI's bare ``{"detail": "Not Found"}``. OpenAI answers ``{"error": {"message", "type",
"param", "code"}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from impasto.api.bodies import TOO_DEEP, is_unreadable_body, validation_items
from impasto.services.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    QueueFullError,
    ServiceError,
)

log = logging.getLogger("impasto.api.compat")


class CompatError(Exception):
    """A failure with an HTTP status that the compat handlers turn into their dialect; ``code``
    is OpenAI's machine-readable ``code`` where it has its own (``model_not_found``)."""

    def __init__(
        self, status: int, message: str, field: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.code = code


# Native fields an A1111 request fills from a field of its own (api/compat/a1111_convert.py).
_SENT_AS = {
    "plugins.styles": "styles",
    "hires.prompt": "hr_prompt",
    "hires.negative_prompt": "hr_negative_prompt",
}


# Native fields only an A1111 request fills (the OpenAI routes take them under their own name).
_A1111_SENT_AS = {
    **_SENT_AS,
    "refiner": "refiner_checkpoint",
    "refiner_switch": "refiner_switch_at",
    "init_image": "init_images",
    "mask_image": "mask",
    # The hires pass's fields that come from one A1111 field each (its size and scale come
    # from hr_scale or hr_resize_x/y, so they keep the native names their message explains).
    "hires.steps": "hr_second_pass_steps",
    "hires.sampler": "hr_sampler_name",
    "hires.schedule": "hr_scheduler",
    "hires.cfg_scale": "hr_cfg",
    "hires.upscaler": "hr_upscaler",
    "hires.strength": "denoising_strength",
}


def _as_sent(field: str, message: str) -> tuple[str, str]:
    """``field`` and ``message`` as a compat client sent them."""
    return _SENT_AS.get(field, field), message


def a1111_field(field: str) -> str:
    """The A1111 request field a native ``field`` came from (``hires.steps`` ->
    ``hr_second_pass_steps``), else ``field``."""
    return _A1111_SENT_AS.get(field, field)


def _a1111_as_sent(field: str, message: str) -> tuple[str, str]:
    """``field`` and ``message`` as an A1111 client sent them."""
    return _A1111_SENT_AS.get(field, field), message


def _validation_pairs(
    exc: ValidationException, request: Request[Any, Any, Any]
) -> list[tuple[str, str]]:
    pairs = validation_items(exc, request) or [("body", str(exc.detail))]
    return [_as_sent(field, message) for field, message in pairs]


def _status(exc: ServiceError) -> int:
    if isinstance(exc, FieldError):
        return 422
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, QueueFullError):
        return 429
    return 400


# --- AUTOMATIC1111 -------------------------------------------------------------------------


A1111_PREFIX = "/sdapi/"
OPENAI_PREFIX = "/v1"


def fastapi_detail(status: int, detail: str) -> Response[Any]:
    """FastAPI's own answer for a missing route or method: ``{"detail": ...}``."""
    return Response({"detail": detail}, status_code=status)


def _a1111_error(status: int, kind: str, message: str) -> Response[Any]:
    # "errors" is str() of the exception, which for FastAPI's HTTPException is "<status>: <detail>"
    errors = f"{status}: {message}" if kind == "HTTPException" else message
    body = {"error": kind, "detail": message, "body": "", "errors": errors}
    return Response(body, status_code=status)


def _a1111_invalid(pairs: list[tuple[str, str]], kind: str | None = None) -> Response[Any]:
    # The body as a whole is FastAPI's ["body"]; a field in it ["body", field]. ``kind`` is
    # pydantic's error type where known (``type_error.integer``).
    detail = [
        {"loc": ["body"] if f == "body" else ["body", f], "msg": m, "type": kind or "value_error"}
        for f, m in pairs
    ]
    summary = "; ".join(f"{f}: {m}" for f, m in pairs)
    body = {"error": "RequestValidationError", "detail": detail, "body": "", "errors": summary}
    return Response(body, status_code=422)


def _a1111_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return _a1111_invalid([_a1111_as_sent(*pair) for pair in _validation_pairs(exc, request)])


def _a1111_service(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    if isinstance(exc, FieldError):
        return _a1111_invalid([_a1111_as_sent(exc.field, exc.message)])
    response = _a1111_error(_status(exc), type(exc).__name__, str(exc))
    if isinstance(exc, QueueFullError):  # when to try again, as the native API says it
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _a1111_compat(request: Request[Any, Any, Any], exc: CompatError) -> Response[Any]:
    if exc.status == 422 and exc.field:
        return _a1111_invalid([(exc.field, exc.message)], exc.code)
    return _a1111_error(exc.status, "HTTPException", exc.message)


def compat_routing(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any] | None:
    """A missing route or method under /sdapi as FastAPI answers it, under /v1 as OpenAI
    does ("Invalid URL (GET /v1/...)"); None elsewhere."""
    path = request.url.path
    if exc.status_code not in (404, 405):
        return None
    if path.startswith(A1111_PREFIX):
        response = fastapi_detail(exc.status_code, str(exc.detail))
    elif path.startswith(f"{OPENAI_PREFIX}/"):
        response = openai_error(exc.status_code, f"Invalid URL ({request.method} {path})")
    else:
        return None
    response.headers.update(exc.headers or {})  # Allow
    return response


A1111_TOKEN_REQUIRED = (
    "a valid token is required: send it as the HTTP Basic password (any user name), as "
    "A1111's --api-auth takes one, or as 'Authorization: Bearer <token>' (the token is in the "
    "daemon's discovery file or your config)"
)


def _a1111_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if is_unreadable_body(exc):  # FastAPI's 422 "json_invalid", as A1111 answers
        return _a1111_invalid([("body", f"JSON decode error: {exc.detail}")], "json_invalid")
    if exc.status_code == 401:
        # A1111 challenges with Basic (its --api-auth): clients that send credentials only
        # when challenged (urllib's HTTPBasicAuthHandler, a browser) need that challenge.
        response = _a1111_error(401, "HTTPException", A1111_TOKEN_REQUIRED)
        response.headers["WWW-Authenticate"] = 'Basic realm="impasto"'
        return response
    response = _a1111_error(exc.status_code, "HTTPException", str(exc.detail))
    response.headers.update(exc.headers or {})  # Retry-After
    return response


def _a1111_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _a1111_error(500, type(exc).__name__, "internal error; the daemon log has the details")


A1111_HANDLERS: dict[Any, Any] = {
    ValidationException: _a1111_validation,
    RecursionError: lambda request, exc: _a1111_error(400, "HTTPException", TOO_DEEP),
    ServiceError: _a1111_service,
    CompatError: _a1111_compat,
    HTTPException: _a1111_http,
    Exception: _a1111_internal,
}


# --- OpenAI --------------------------------------------------------------------------------

_OPENAI_TYPES = {401: "authentication_error", 429: "rate_limit_error"}
# The openai client sends a request again on 408, 409, 429 and 5xx (twice, by default) unless
# the answer says ``x-should-retry: false``. Of Impasto's answers only a full queue (429, with
# Retry-After) and no room for another stream (503) pass with time: sent again, a cancelled
# (409) or failed (500) job would be queued anew, undoing the cancel or failing thrice.
_PASSES_WITH_TIME = frozenset({429, 503})


def openai_error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> Response[Any]:
    """An OpenAI error body; 5xx are server_error, 4xx invalid_request_error unless named."""
    kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status, "invalid_request_error")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    retry = "true" if status in _PASSES_WITH_TIME else "false"
    return Response(body, status_code=status, headers={"x-should-retry": retry})


def _openai_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    pairs = _validation_pairs(exc, request)
    message = "; ".join(f"{f}: {m}" for f, m in pairs)
    param = None if pairs[0][0] == "body" else pairs[0][0]  # OpenAI names no param for the body
    return openai_error(400, message, param, "invalid_value")


def _openai_service(request: Request[Any, Any, Any], exc: ServiceError) -> Response[Any]:
    if isinstance(exc, FieldError):
        field, message = _as_sent(exc.field, exc.message)
        return openai_error(400, f"{field}: {message}", field, "invalid_value")
    status = _status(exc)
    code = {404: "not_found", 409: "conflict", 429: "rate_limit_exceeded"}.get(status)
    response = openai_error(status, str(exc), None, code)
    if isinstance(exc, QueueFullError):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _openai_compat(request: Request[Any, Any, Any], exc: CompatError) -> Response[Any]:
    status = 400 if exc.status == 422 else exc.status
    code = exc.code or ("invalid_value" if exc.field else None)
    return openai_error(status, exc.message, exc.field, code)


def _openai_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    # OpenAI's code for a missing or wrong key, which chat front ends show as such.
    code = "invalid_api_key" if exc.status_code == 401 else None
    response = openai_error(exc.status_code, str(exc.detail), None, code)
    response.headers.update(exc.headers or {})  # WWW-Authenticate, Retry-After
    return response


def _openai_internal(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return openai_error(500, "internal error; the daemon log has the details")


OPENAI_HANDLERS: dict[Any, Any] = {
    ValidationException: _openai_validation,
    RecursionError: lambda request, exc: openai_error(400, TOO_DEEP),
    ServiceError: _openai_service,
    CompatError: _openai_compat,
    HTTPException: _openai_http,
    Exception: _openai_internal,
}
