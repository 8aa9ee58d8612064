"""Request bodies: a JSON route takes only JSON, and nesting is bounded.

A ``text/plain`` body is what a cross-site form can send without a CORS preflight, so it is
never read as JSON (415). Nesting deep enough to exhaust the decoder's stack is a 400, not a 500.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException

from impasto.services.errors import FieldError
from impasto.wire import decode_error
from impasto.wire.limits import ENUM_ERROR, choices_rule

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_OPTION_DEPTH = 32  # levels of nesting allowed in free-form options such as ``plugins``
TOO_DEEP = "the JSON body nests too deeply; flatten it"
NO_BODY = "is required: send a JSON object"


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _takes_json(handler: Any) -> bool:
    data = handler.parsed_fn_signature.parameters.get("data")
    kwarg = data.kwarg_definition if data is not None else None
    return getattr(kwarg, "media_type", None) == RequestEncodingType.JSON


def _has_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or (length not in (b"", b"0"))


def json_only(app: Any) -> Any:
    """Litestar middleware: 415 for a body that is not JSON on a route that reads JSON."""

    async def checked(scope: dict[str, Any], receive: Any, send: Any) -> None:
        handler = scope.get("route_handler")
        if scope["type"] == "http" and scope.get("method") in BODY_METHODS and handler is not None:
            headers = {k.lower(): v for k, v in scope.get("headers", [])}
            content_type = headers.get(b"content-type", b"").decode("latin-1")
            if _has_body(headers) and not is_json(content_type) and _takes_json(handler):
                raise HTTPException(
                    status_code=415,
                    detail=f"the body must be JSON: send 'Content-Type: application/json' "
                    f"(got {content_type or 'no Content-Type'!r})",
                )
        await app(scope, receive, send)

    return checked


def check_depth(value: Any, field: str, limit: int = MAX_OPTION_DEPTH) -> None:
    """Raise FieldError when ``value`` nests lists or objects deeper than ``limit`` levels."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    raise FieldError(field, f"nests deeper than {limit} levels")
                stack.append((child, depth + 1))


def too_deep_handler(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    return Response({"status_code": 400, "detail": TOO_DEEP}, status_code=400)


def _body_type(request: Request[Any, Any, Any] | None) -> Any:
    """The type the route decodes its body into (its ``data`` parameter), if any."""
    handler = request.scope.get("route_handler") if request is not None else None
    data = handler.parsed_fn_signature.parameters.get("data") if handler is not None else None
    return data.annotation if data is not None else None


def validation_items(
    exc: ValidationException, request: Request[Any, Any, Any] | None = None
) -> list[tuple[str, str]]:
    """(field, message) pairs of a request body Litestar could not decode, for every API dialect.

    The handler's body parameter (``data``) is the body itself: an empty body is "body is
    required", a body of the wrong JSON type is "body: Expected `object`...". A value outside
    a closed set is answered with the set, read from the route's body type.
    """
    items = exc.extra if isinstance(exc.extra, list) else []
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", ""))
        key = item.get("key")
        field, rule = decode_error(message, None if key in (None, "", "data") else str(key))
        if key == "data" and field == "body":
            rule = NO_BODY if message == "'data'" else rule
        if rule.startswith(ENUM_ERROR):
            rule = choices_rule(_body_type(request), field) or rule
        out.append((field, rule))
    return out
