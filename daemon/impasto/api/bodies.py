"""Request bodies: a JSON route takes only JSON, of the types its schema says, nesting bounded.

A ``text/plain`` body is what a cross-site form can send without a CORS preflight, so it is
never read as JSON (415). Nesting deep enough to exhaust the decoder's stack is a 400, not a 500.
Litestar converts bodies in msgspec's lax mode (``"128"`` for an integer, ``1`` for a boolean:
lax mode is for query strings); ``strict_types`` holds a typed body to its schema's JSON types.
"""

from __future__ import annotations

import os
import re
from dataclasses import is_dataclass
from typing import Any, get_type_hints

import msgspec
from litestar import Request, Response
from litestar.datastructures import UploadFile
from litestar.enums import ParamType, RequestEncodingType
from litestar.exceptions import (
    ClientException,
    HTTPException,
    SerializationException,
    ValidationException,
)
from litestar.params import ParameterKwarg

from impasto.services.errors import FieldError
from impasto.services.images import too_large
from impasto.wire import REQUIRED, decode_error, unknown_field

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MAX_OPTION_DEPTH = 32  # levels of nesting allowed in free-form options such as ``plugins``
TOO_DEEP = "the JSON body nests too deeply; flatten it"
NO_BODY = "is required: send a JSON object"
KNOWN_FIELDS_ONLY = "known_fields_only"  # route opt: a body field the schema lacks is a 422
_CLASS_NAMED = re.compile(r"<class '(\w+)'>")


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _body_media(handler: Any) -> Any:
    """The encoding a route handler reads its body in (its ``data`` parameter), if any."""
    data = handler.parsed_fn_signature.parameters.get("data")
    kwarg = data.kwarg_definition if data is not None else None
    return getattr(kwarg, "media_type", None)


def _takes_json(handler: Any) -> bool:
    return bool(_body_media(handler) == RequestEncodingType.JSON)


def _wrong_media(handler: Any, content_type: str) -> str | None:
    """Why a body of ``content_type`` cannot be what ``handler`` reads, else None."""
    media = _body_media(handler)
    got = f"(got {content_type or 'no Content-Type'!r})"
    if media == RequestEncodingType.JSON and not is_json(content_type):
        return f"the body must be JSON: send 'Content-Type: application/json' {got}"
    multipart = content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"
    if media == RequestEncodingType.MULTI_PART and not multipart:
        return f"the body must be a form with files: send multipart/form-data {got}"
    return None


def _has_body(headers: Any) -> bool:
    length = (headers.get("content-length") or "0").strip()
    return "transfer-encoding" in headers or length not in ("", "0")


async def checked_body(request: Request[Any, Any, Any]) -> None:
    """Before-request hook (after the token guard: a caller without the token learns nothing
    of a route): 415 for a body in another encoding than its route reads (JSON, or a multipart
    form for the routes that take files), then :func:`strict_types`."""
    handler = request.scope.get("route_handler")
    if request.method in BODY_METHODS and handler is not None and _has_body(request.headers):
        wrong = _wrong_media(handler, request.headers.get("content-type") or "")
        if wrong is not None:
            raise HTTPException(status_code=415, detail=wrong)
    await strict_types(request)


async def read_file_part(file: UploadFile, max_bytes: int, field: str) -> bytes:
    """A form's file part, if it is at most ``max_bytes``; else a FieldError giving its size
    (what was read stops one byte past the limit; the part's own length is the size)."""
    content = await file.read(max_bytes + 1)
    if len(content) > max_bytes:
        size = file.file.seek(0, os.SEEK_END)  # the part is spooled: its end is its length
        raise FieldError(field, too_large(size, max_bytes))
    return content


def _integral(value: Any) -> Any:
    """``value`` with every whole float as an int: JSON Schema's ``integer`` includes ``128.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


async def strict_types(request: Request[Any, Any, Any]) -> None:
    """Before-request hook: 422 for a JSON body whose values have the wrong JSON type, or (on
    routes whose ``opt`` sets KNOWN_FIELDS_ONLY: Impasto's own API) a field its schema lacks.

    Only typed bodies (msgspec structs) are held to their types; a route that takes a free-form
    object (the AUTOMATIC1111 routes, which coerce as pydantic does) is left to its handler.
    The compatible APIs ignore unknown fields: AUTOMATIC1111 does, and tools send
    OpenAI-compatible servers their own extras. The body is decoded once: Litestar reuses the
    value ``request.json()`` cached.
    """
    handler = request.scope.get("route_handler")
    if request.method not in BODY_METHODS or not _takes_json(handler):
        return
    typed = struct_body(handler)
    if typed is None:
        return
    try:
        data = await request.json()
    except SerializationException as exc:
        await _unreadable(request, typed, exc)
        return
    if data is None:
        return  # no body: the signature's own check says the body is required
    if handler.opt.get(KNOWN_FIELDS_ONLY):
        unknown = unknown_field(data, typed)
        if unknown is not None:  # a misspelt field would otherwise be ignored without a word
            raise FieldError(*unknown)
    try:
        msgspec.convert(_integral(data), typed, strict=True)
    except msgspec.ValidationError as exc:
        raise _schema_mismatch(exc) from None


def _schema_mismatch(exc: msgspec.ValidationError) -> ValidationException:
    """msgspec's error (its ``$.field`` path) as the 422 the error handlers turn into words."""
    extra = [{"message": str(exc), "key": "data", "source": "body"}]
    return ValidationException(detail="the body does not match its schema", extra=extra)


async def _unreadable(
    request: Request[Any, Any, Any], typed: type[msgspec.Struct], exc: SerializationException
) -> None:
    """A body that does not decode: a value the schema cannot hold (``1e400``, past a float's
    range, which only a decode into the schema places) is a 422 naming its field; anything
    else is a 400 saying the body is not JSON."""
    body = await request.body()
    try:
        msgspec.json.decode(body, type=typed)
    except msgspec.ValidationError as mismatch:
        raise _schema_mismatch(mismatch) from None
    except msgspec.DecodeError:
        pass
    reason = str(exc.detail or exc).rstrip(".")
    raise ClientException(detail=f"the body is not valid JSON: {reason}") from exc


def is_unreadable_body(exc: Exception) -> bool:
    """Whether ``exc`` is the 400 for a body that is not JSON: ours above, or Litestar's for a
    free-form body (both a ClientException raised from a SerializationException)."""
    return isinstance(exc, ClientException) and isinstance(exc.__cause__, SerializationException)


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


def body_type(handler: Any) -> Any:
    """The type a route handler decodes its body into (its ``data`` parameter), if any."""
    data = handler.parsed_fn_signature.parameters.get("data") if handler is not None else None
    return data.annotation if data is not None else None


def struct_body(handler: Any) -> type[msgspec.Struct] | None:
    """The handler's body type when it is a msgspec struct (a typed body), else None."""
    body = body_type(handler)
    return body if isinstance(body, type) and issubclass(body, msgspec.Struct) else None


def _body_type(request: Request[Any, Any, Any] | None) -> Any:
    return body_type(request.scope.get("route_handler") if request is not None else None)


def _length_rule(kwarg: ParameterKwarg) -> str | None:
    low, high = kwarg.min_length, kwarg.max_length
    if low and high:
        return f"must be {low} to {high} characters long"
    if high is not None:
        return f"must be at most {high} characters long"
    return f"must be at least {low} characters long" if low else None


def _sent_parameter(
    request: Request[Any, Any, Any] | None, key: str, message: str
) -> tuple[str, str] | None:
    """A header's error (``Idempotency-Key``) as (the header's name, its rule in words and what
    was sent), where Litestar names the handler's argument (``idempotency_key``) in msgspec's
    words; None for anything but a header parameter."""
    handler = request.scope.get("route_handler") if request is not None else None
    parameter = handler.parsed_fn_signature.parameters.get(key) if handler is not None else None
    kwarg = parameter.kwarg_definition if parameter is not None else None
    if request is None or not isinstance(kwarg, ParameterKwarg):
        return None
    name = kwarg.header or (kwarg.name if kwarg.param_type == ParamType.HEADER else None)
    if not name:
        return None
    rule = (_length_rule(kwarg) if "length" in message else None) or message
    sent = request.headers.get(name)
    return name, (f"{rule}; this one is {len(sent)}" if sent is not None else rule)


# What a form's file field held instead of one file, by the type Litestar names in its error
# (``Unsupported type: <class 'list'>``), or REQUIRED when it was left out.
_FILE_SENT_AS = {
    "list": "it was sent more than once",
    "str": "it was sent as a text field, not a file",
    REQUIRED: "none was sent",
}


def _file_part_rule(handler: Any, field: str, message: str, rule: str) -> str | None:
    """The rule of a multipart form's file field (``file`` of ``POST /images``) sent as
    anything but one file part, and what came instead; None for any other field."""
    form = body_type(handler)
    if not is_dataclass(form) or _body_media(handler) != RequestEncodingType.MULTI_PART:
        return None
    if get_type_hints(form).get(field) is not UploadFile:
        return None
    kind = _CLASS_NAMED.search(message)
    sent = _FILE_SENT_AS.get(kind.group(1) if kind else rule)
    wanted = f"send exactly one file part named {field}"
    return f"{wanted}; {sent}" if sent else wanted


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
        header = _sent_parameter(request, str(key), message) if key else None
        if header is not None:
            out.append(header)
            continue
        named = None if key in (None, "", "data") else str(key)
        field, rule = decode_error(message, named, schema=_body_type(request))
        if key == "data" and field == "body":
            rule = NO_BODY if message == "'data'" else rule
        handler = request.scope.get("route_handler") if request is not None else None
        out.append((field, _file_part_rule(handler, field, message, rule) or rule))
    return out
