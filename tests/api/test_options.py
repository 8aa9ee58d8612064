"""``OPTIONS`` on any path lists exactly the methods that path serves (RFC 9110 ``Allow``)."""

from __future__ import annotations

import re

from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from impasto.api.app import build_litestar
from impasto.services.container import Services


def _example(path: str) -> str:
    """A concrete path for a route template (``/generate/{job_id:str}`` -> ``/generate/x``)."""
    return re.sub(r"\{[^}]+\}", "x", path)


def test_options_lists_every_method_of_the_path(services: Services, api: TestClient) -> None:
    app = build_litestar(services)
    checked = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or ":path}" in route.path:
            continue  # a catch-all (the A1111 404s, static files) is no single resource
        methods = set(route.methods)
        if len(methods - {"OPTIONS", "HEAD"}) < 2:
            continue
        if "GET" in methods:
            methods.add("HEAD")  # served as GET in front of Litestar (api/head.py)
        response = api.options(_example(route.path))
        assert response.status_code == 204, (route.path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == methods, route.path
        checked += 1
    # /generate/{job_id} (GET, PATCH, DELETE), /models/{model_id}, /models/installs/{id}, ...
    assert checked >= 4


def test_the_websocket_route_answers_plain_http_as_rfc_9110_says(api: TestClient) -> None:
    """/ws takes a WebSocket handshake (a GET with Upgrade): OPTIONS lists GET, a plain GET
    is told to upgrade (426), another method is a 405 naming real methods (it said
    ``Allow: websocket``, which is none)."""
    options = api.options("/api/v1/ws")
    assert options.status_code == 204
    assert {m.strip() for m in options.headers["allow"].split(",")} == {"GET", "HEAD", "OPTIONS"}
    plain = api.get("/api/v1/ws")
    assert plain.status_code == 426 and plain.headers["upgrade"] == "websocket"
    assert "WebSocket" in plain.json()["detail"]
    post = api.post("/api/v1/ws", json={})
    assert post.status_code == 405 and "websocket" not in post.headers["allow"]
