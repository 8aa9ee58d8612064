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
