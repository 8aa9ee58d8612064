"""``/schema/openapi.json``: Litestar's document, corrected where it says otherwise than the API.

Errors. Litestar documents one ``400`` per route in the shape of its own
``ValidationException``. The daemon answers otherwise: every native failure (400, 401, 404,
409, 413, 415, 422, 429, 507, 500) is ``{"status_code", "detail", "errors"?}``; the
AUTOMATIC1111 routes answer as A1111 does (FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``
for a body it cannot read, A1111's ``{"error", "detail", "body", "errors"}`` for the rest,
``{"detail": "Not Found"}`` for a missing route); the OpenAI routes answer ``{"error":
{"message", "type", "param", "code"}}``. `document_errors` writes that in: a ``4XX`` and a
``5XX`` response on every operation, referring to the dialect's error schema, in place of the
``400``.

Media types. A route that answers in more than one media type (an image as PNG, or as a JPEG
thumbnail) names the others in its ``opt`` under `ALSO_ANSWERS`; Litestar documents only the
handler's own. An `EventStream` there documents server-sent events (``GET /events``, OpenAI's
``stream: true``) as OpenAPI 3.2 reads a ``text/event-stream`` schema and Schemathesis checks
it: the schema of one event, its ``event`` name from a closed set and its ``data`` JSON text
of the given types.

Links. The answer to a submitted job, a started install and the model list links to what can be
done next with the id it holds (`LINKS`), as OpenAPI 3 ``links`` that clients and stateful
testers (Schemathesis) follow.

Bounds. Litestar 2 leaves out a lower bound of 0 on an optional number (``cfg_scale``: ``ge=0``,
documented with a maximum only), so schema-driven clients sent negative values as valid.
`restore_bounds` takes the bounds of every request body from msgspec, which checks them.

Closed objects. Impasto's own routes refuse a body field their schema lacks (a misspelt
``stepz`` would otherwise be ignored); `close_objects` says so (``additionalProperties:
false``) on those bodies and the objects within them.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.routes import HTTPRoute

from impasto.api.bodies import KNOWN_FIELDS_ONLY, struct_body
from impasto.api.compat.errors import A1111_PREFIX, OPENAI_PREFIX

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
    if path.startswith(A1111_PREFIX):
        return "A1111Error"
    if path.startswith(f"{OPENAI_PREFIX}/"):
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
                "A fault (the daemon log has it) or a full disk (507)",
                name,
            )
    return out


_LOWER = ("minimum", "exclusiveMinimum")
ALSO_ANSWERS = "also_answers"  # route handler opt key: media types answered besides its own
EVENT_STREAM_MEDIA = "text/event-stream"


@dataclass(frozen=True)
class EventStream:
    """A server-sent event answer: the names of its events and the types of their JSON data
    (msgspec types, or the names of schemas the document has, such as "OpenAIError")."""

    events: tuple[str, ...]
    data: tuple[Any, ...]


def _event_schema(stream: EventStream, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schema of one event of ``stream``; its data types are added to ``schemas``."""
    refs = []
    for kind in stream.data:
        if isinstance(kind, str):
            refs.append({"$ref": f"#/components/schemas/{kind}"})
            continue
        (ref,), components = msgspec.json.schema_components(
            [kind], ref_template="#/components/schemas/{name}"
        )
        schemas.update(components)
        refs.append(ref)
    return {
        "type": "object",
        "description": "One server-sent event: its name and its data, a JSON text",
        "properties": {
            "event": {"type": "string", "enum": list(stream.events)},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": refs[0] if len(refs) == 1 else {"oneOf": refs},
            },
            "id": {"type": "string"},
        },
    }


def _http_handlers(app: Litestar) -> list[tuple[HTTPRoute, Any]]:
    return [
        (route, handler)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
    ]


def add_media_types(openapi: dict[str, Any], app: Litestar) -> None:
    """Document the `ALSO_ANSWERS` media types of each handler's success answer (in place)."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for route, handler in _http_handlers(app):
        for also in handler.opt.get(ALSO_ANSWERS, ()):
            for method in handler.http_methods:
                operation = openapi["paths"][route.path_format][method.lower()]
                content = operation["responses"][str(handler.status_code)]["content"]
                if isinstance(also, EventStream):
                    content[EVENT_STREAM_MEDIA] = {"schema": _event_schema(also, schemas)}
                else:
                    content.setdefault(also, copy.deepcopy(next(iter(content.values()))))


def _body_types(app: Litestar, *, known_fields_only: bool = False) -> list[Any]:
    """The msgspec types of the request bodies the app's routes read (with
    ``known_fields_only``, of the routes that refuse a field their schema lacks)."""
    found = (
        struct_body(handler)
        for _, handler in _http_handlers(app)
        if handler.opt.get(KNOWN_FIELDS_ONLY) or not known_fields_only
    )
    return [body for body in found if body is not None]


def close_objects(openapi: dict[str, Any], bodies: list[Any]) -> None:
    """Document ``bodies`` and the objects they hold as taking no other fields
    (``additionalProperties: false``), as the routes reading them check (in place)."""
    _, checked = msgspec.json.schema_components(bodies, ref_template="{name}")
    documented = openapi.get("components", {}).get("schemas", {})
    for name in checked:
        if "properties" in documented.get(name, {}):
            documented[name]["additionalProperties"] = False


def _lower_bound(schema: dict[str, Any]) -> dict[str, Any]:
    """The lower bound of a number schema, or of its number branch (an optional number)."""
    for branch in (schema, *schema.get("anyOf", ())):
        bound = {key: branch[key] for key in _LOWER if key in branch}
        if bound:
            return bound
    return {}


def restore_bounds(openapi: dict[str, Any], bodies: list[Any]) -> None:
    """Give each number of ``openapi``'s body schemas the lower bound msgspec checks, where
    Litestar left it out (in place)."""
    _, checked = msgspec.json.schema_components(bodies, ref_template="{name}")
    documented = openapi.get("components", {}).get("schemas", {})
    for name, schema in checked.items():
        properties = documented.get(name, {}).get("properties", {})
        for field, rule in schema.get("properties", {}).items():
            written = properties.get(field)
            if written is None or any(key in written for key in _LOWER):
                continue
            written.update(_lower_bound(rule))


JOB = {"job_id": "$response.body#/id"}
INSTALL = {"install_id": "$response.body#/id"}
FIRST_MODEL = {"model_id": "$response.body#/0/id"}
# (path, method) of an answer -> links to what can be done next with what it returned:
# (name, path, method, parameters as OpenAPI runtime expressions).
LINKS: dict[tuple[str, str], list[tuple[str, str, str, dict[str, str]]]] = {
    ("/api/v1/generate", "post"): [
        ("JobStatus", "/api/v1/generate/{job_id}", "get", JOB),
        ("Reprioritise", "/api/v1/generate/{job_id}", "patch", JOB),
        ("Cancel", "/api/v1/generate/{job_id}/cancel", "post", JOB),
        ("Remove", "/api/v1/generate/{job_id}", "delete", JOB),
    ],
    ("/api/v1/models/install", "post"): [
        ("InstallStatus", "/api/v1/models/installs/{install_id}", "get", INSTALL),
        ("CancelInstall", "/api/v1/models/installs/{install_id}/cancel", "post", INSTALL),
        ("DismissInstall", "/api/v1/models/installs/{install_id}", "delete", INSTALL),
    ],
    ("/api/v1/models", "get"): [
        ("Model", "/api/v1/models/{model_id}", "get", FIRST_MODEL),
        ("LoadModel", "/api/v1/models/{model_id}/load", "post", FIRST_MODEL),
        ("UnloadModel", "/api/v1/models/{model_id}/unload", "post", FIRST_MODEL),
    ],
}


def _operation_ref(path: str, method: str) -> str:
    """A JSON pointer to an operation of this document (RFC 6901 escapes ``~`` and ``/``)."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(openapi: dict[str, Any]) -> None:
    """Write `LINKS` into the success answers of ``openapi`` (in place): clients and stateful
    testers follow them from a submitted job or install to its status, cancel and delete."""
    for (path, method), links in LINKS.items():
        responses = openapi["paths"][path][method]["responses"]
        written = {
            name: {"operationRef": _operation_ref(target, verb), "parameters": parameters}
            for name, target, verb, parameters in links
        }
        for status, response in responses.items():
            if status.startswith("2"):
                response["links"] = written


class OpenAPIJson(JsonRenderPlugin):
    """``/schema/openapi.json``: Litestar's document with the error responses, every media type
    of an answer, the bounds of request bodies as msgspec checks them and links between
    operations."""

    def __init__(self) -> None:
        super().__init__()
        self._documented: dict[str, Any] | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._documented is None:  # the document never changes once the app is built
            documented = document_errors(openapi_schema)
            restore_bounds(documented, _body_types(request.app))
            close_objects(documented, _body_types(request.app, known_fields_only=True))
            add_media_types(documented, request.app)
            add_links(documented)
            self._documented = documented
        return self.render_json(request, self._documented)
