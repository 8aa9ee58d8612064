"""Routes get their services by dependency injection; absent optional services answer clearly."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import TestClient

from impasto.api.app import create_app
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
