"""Property-based requests from our OpenAPI document: no input makes the API answer 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from impasto.api.app import create_app
from tests.api.conftest import make_services


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    services = make_services(
        root, allowed_hosts=["testserver", "testserver.local", "localhost"], rate_limit=0
    )
    app = create_app(services)
    # The event stream never ends on its own: it is covered by the integration tests instead.
    yield schemathesis.openapi.from_asgi("/schema/openapi.json", app).exclude(path="/api/v1/events")
    services.extra["db"].close()


def test_no_server_errors(api_schema: schemathesis.BaseSchema) -> None:
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def no_5xx(case: schemathesis.Case) -> None:
            response = case.call()
            detail = (case.method, case.formatted_path, response.status_code, response.text[:300])
            assert response.status_code < 500, detail

        no_5xx()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /api/v1/generate" in checked and len(checked) >= 12
