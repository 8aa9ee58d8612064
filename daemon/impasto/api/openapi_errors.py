"""The OpenAPI document says what each route answers when it fails, in that route's dialect.

Litestar documents one ``400`` per route in the shape of its own ``ValidationException``. The
daemon answers otherwise: every native failure (400, 401, 404, 409, 413, 415, 422, 429, 507,
500) is ``{"status_code", "detail", "errors"?}``; the AUTOMATIC1111 routes answer as A1111
does (FastAPI's ``{"detail": [{"loc", "msg", "type"}]}`` for a body it cannot read, A1111's
``{"error", "detail", "body", "errors"}`` for the rest, ``{"detail": "Not Found"}`` for a
missing route); the OpenAI routes answer ``{"error": {"message", "type", "param", "code"}}``.
`OpenAPIJson` serves ``/schema/openapi.json`` with that written in: a ``4XX`` and a ``5XX``
response on every operation, referring to the dialect's error schema, in place of the ``400``.
"""

from __future__ import annotations

import copy
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

_NATIVE = {
    "type": "object",
    "description": "Impasto's error: the status, what to do, and the fields at fault",
    "required": ["status_code", "detail"],
    "properties": {
        "status_code": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_A1111 = {
    "type": "object",
    "description": "AUTOMATIC1111's errors: FastAPI's validation list, or its HTTPException",
    "required": ["detail"],
    "properties": {
        "detail": {
            "anyOf": [
                {"type": "string"},
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "loc": {"type": "array"},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                },
            ]
        },
        "error": {"type": "string"},
        "body": {},
        "errors": {},
    },
}
_OPENAI = {
    "description": "OpenAI's error object (the security layer's refusals are Impasto's)",
    "anyOf": [
        {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "param": {"type": ["string", "null"]},
                        "code": {"type": ["string", "null"]},
                    },
                }
            },
        },
        {"$ref": "#/components/schemas/ImpastoError"},
    ],
}
ERROR_SCHEMAS = {"ImpastoError": _NATIVE, "A1111Error": _A1111, "OpenAIError": _OPENAI}


def error_schema_name(path: str) -> str:
    """The error dialect a route answers in, by where it is mounted."""
    if path.startswith("/sdapi/"):
        return "A1111Error"
    if path.startswith("/v1/"):
        return "OpenAIError"
    return "ImpastoError"


def _response(description: str, name: str) -> dict[str, Any]:
    schema = {"$ref": f"#/components/schemas/{name}"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document_errors(openapi: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``openapi`` whose operations document their error responses."""
    out = copy.deepcopy(openapi)
    out.setdefault("components", {}).setdefault("schemas", {}).update(ERROR_SCHEMAS)
    for path, item in out.get("paths", {}).items():
        name = error_schema_name(path)
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("400", None)  # Litestar's ValidationException, which is never sent
            responses["4XX"] = _response("The request cannot be served as sent", name)
            responses["5XX"] = _response(
                "A fault (the daemon log has it), a feature Impasto lacks (501) or a full disk "
                "(507)",
                name,
            )
    return out


class OpenAPIJson(JsonRenderPlugin):
    """``/schema/openapi.json``: Litestar's document with the error responses written in."""

    def __init__(self) -> None:
        super().__init__()
        self._documented: dict[str, Any] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._documented is None:  # the document never changes once the app is built
            self._documented = document_errors(openapi_schema)
        return self.render_json(request, self._documented)
