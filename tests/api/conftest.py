"""The API in-process with real services (SQLite file, uploads, models) but no worker running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from impasto.api.app import create_app
from impasto.assembly import build_services
from impasto.paths import resolve_paths
from impasto.services.container import Services
from impasto.settings import Settings


def make_services(tmp_path: Path, **overrides: object) -> Services:
    fields: dict[str, object] = {
        "data_dir": str(tmp_path / "data"),
        "runtime_dir": str(tmp_path / "run"),
        "log_dir": str(tmp_path / "logs"),
        "allowed_hosts": ["testserver.local"],
        "show_test_models": True,  # the tests run on the bundled test models
        # Plumbing tests run on the fast random model, as tests/harness.py's daemons do.
        "default_model": "sd-tiny",
        **overrides,
    }
    settings = Settings(**fields)  # type: ignore[arg-type]
    paths = resolve_paths(settings)
    paths.create()
    services = build_services(settings, paths)
    # No worker: jobs stay queued, so every state a route can see is set up by the test.
    services.supervisor = None
    services.jobs.supervisor = None
    return services


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    services = make_services(tmp_path)
    yield services
    services.extra["db"].close()


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    with TestClient(app=create_app(services)) as client:
        yield client
