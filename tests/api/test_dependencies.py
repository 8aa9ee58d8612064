"""Routes get their services by dependency injection; absent optional services answer clearly."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Router, get
from litestar.exceptions import InternalServerException
from litestar.testing import TestClient

from impasto.api.app import build_litestar, create_app
from impasto.api.security import PUBLIC
from impasto.services.container import Services
from tests.api.conftest import make_services

API = Path(__file__).resolve().parents[2] / "daemon" / "impasto" / "api"


def test_without_a_model_manager_routes_that_need_it_answer_409(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    services.models = None
    try:
        with TestClient(app=create_app(services)) as api:
            listing = api.get("/api/v1/models")
            assert listing.status_code == 200
            assert "sd-tiny" in {m["id"] for m in listing.json()}
            for path in ("/api/v1/models/catalog", "/api/v1/models/sd-tiny"):
                response = api.get(path)
                assert response.status_code == 409, path
                assert "model manager is not running" in response.json()["detail"]
    finally:
        services.extra["db"].close()


def test_with_plugins_off_the_plugin_routes_answer_404(tmp_path: Path) -> None:
    services = make_services(tmp_path)
    services.plugins = None
    try:
        with TestClient(app=create_app(services)) as api:
            for method, path in (
                ("GET", "/api/v1/plugins"),
                ("POST", "/api/v1/plugins/impasto-styles/enable"),
            ):
                response = api.request(method, path)
                assert response.status_code == 404, path
                assert "plugins are not loaded" in response.json()["detail"]
    finally:
        services.extra["db"].close()


def test_only_the_dependencies_module_reads_the_application_state() -> None:
    readers = [
        str(path.relative_to(API))
        for path in API.rglob("*.py")
        if path.name != "dependencies.py"
        and ("state.services" in path.read_text() or "state: State" in path.read_text())
    ]
    assert not readers, f"use the typed providers in api/dependencies.py: {readers}"


def _body_fields(handler: Any) -> set[str]:
    """The top-level field names of a route's JSON body (none for a route without one)."""
    data = handler.parsed_fn_signature.parameters.get("data")
    if data is None:
        return set()
    body = data.annotation
    while typing.get_origin(body) is typing.Annotated:
        body = typing.get_args(body)[0]
    info = msgspec.inspect.type_info(body)
    return {field.encode_name for field in getattr(info, "fields", ())}


def test_no_dependency_is_named_like_a_body_field(services: Services) -> None:
    """Litestar takes a body error at a key that names a dependency for a server fault: a bad
    value there would be a 500 instead of a 422 naming the field."""
    app = build_litestar(services)
    checked = set()
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            fields = _body_fields(handler)
            if fields:
                checked.add(route.path)
            clash = fields & set(handler.resolve_dependencies())
            assert not clash, f"{route.path}: {sorted(clash)} name a body field and a dependency"
    assert {"/api/v1/generate", "/sdapi/v1/png-info", "/v1/images/generations"} <= checked


def test_a_bad_value_in_the_plugins_options_is_a_422_naming_them(api: TestClient) -> None:
    for path in ("/api/v1/generate", "/api/v1/generate/plan"):
        response = api.post(path, json={"prompt": "a red circle", "plugins": []})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["field"] == "plugins"
        assert "Expected `object`, got `array`" in response.json()["detail"]


def test_a_fault_inside_litestar_is_logged_and_answered_like_any_other(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Litestar raises its own InternalServerException for faults it finds (the dependency
    clash above was one): the answer and the daemon log are those of any unhandled error."""

    @get("/fault", opt={PUBLIC: True})
    async def fault() -> None:
        try:
            raise ValueError("what went wrong")
        except ValueError as error:
            raise InternalServerException() from error

    app = create_app(services, extra_routers=[Router(path="/api/v1/test", route_handlers=[fault])])
    with TestClient(app=app, base_url="http://testserver.local") as api, caplog.at_level("ERROR"):
        response = api.get("/api/v1/test/fault")
    assert response.status_code == 500
    assert response.json()["detail"] == "internal error; the daemon log has the details"
    (record,) = [r for r in caplog.records if r.name == "impasto.api"]
    assert "GET /api/v1/test/fault" in record.getMessage()
    assert record.exc_info and "what went wrong" in repr(record.exc_info[1].__cause__)
