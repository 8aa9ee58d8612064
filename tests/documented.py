"""Check a live answer against the schema the API document gives it (OpenAPI 3.1 = JSON Schema
2020-12, its ``$ref``s resolved against the document's own components)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import jsonschema


def answer_schema(
    document: dict[str, Any],
    path: str,
    method: str = "get",
    *,
    closed: bool = True,
    media_type: str = "application/json",
) -> dict[str, Any]:
    """The JSON schema of an operation's 2xx answer, with the components it refers to.

    ``closed``: the document's types with no room for fields they do not name, so that a field
    a route adds without declaring it fails validation too. For ``text/event-stream`` it is the
    schema of one event: ``{"event": name, "data": text}`` (see `event_data_schema`).
    """
    responses = document["paths"][path][method.lower()]["responses"]
    [ok] = [answer for status, answer in responses.items() if status.startswith("2")]
    schema = ok["content"][media_type]["schema"]
    components = copy.deepcopy(document["components"])
    if closed:
        for component in components["schemas"].values():
            if "properties" in component:
                component["additionalProperties"] = False
    return {**schema, "components": components}


def event_data_schema(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    """The JSON schema of the ``data`` of one server-sent event of an operation (closed)."""
    event = answer_schema(document, path, method, media_type="text/event-stream")
    data = event["properties"]["data"]
    assert data["contentMediaType"] == "application/json"
    return {**data["contentSchema"], "components": event["components"]}


def schema_errors(schema: dict[str, Any], body: Any) -> list[str]:
    """Where ``body`` departs from ``schema``, one line each: the JSON path and the message."""
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(body)
    ]


def assert_documented(client: httpx.Client, route: str, body: Any, method: str = "get") -> None:
    """``body``, an answer of ``method`` on ``route`` (a path of the document, its parameters in
    braces), is what the daemon's own document says that answer is, and names nothing more."""
    document = client.get("/schema/openapi.json").json()
    assert schema_errors(answer_schema(document, route, method), body) == []
