"""A refused upscale names the field and the range its own schema allows, not the range a
generation's field of the same name has."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from impasto.wire import UpscaleRequest
from impasto.wire.limits import schema_rule


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"width": 9000, "height": 64}, "width", "must be an integer between 8 and 8192"),
        ({"width": 64, "height": 0}, "height", "must be an integer between 8 and 8192"),
        ({"scale": 9}, "scale", "must be a number between 1 and 8"),
    ],
)
def test_out_of_range_names_the_upscale_rule(
    api: TestClient, fields: dict[str, int], field: str, rule: str
) -> None:
    assert schema_rule(UpscaleRequest, field) == rule  # the schema's one statement of it
    response = api.post("/api/v1/upscale", json={"image": "upload:" + "0" * 32, **fields})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": field, "message": rule}]


def test_a_size_the_schema_allows_is_not_refused_by_another_rule(api: TestClient) -> None:
    """100 x 30 is no multiple of 8 and under a generation's 64: fine for an upscale (the
    refusal is the missing upload, not the size)."""
    body = {"image": "upload:" + "0" * 32, "width": 100, "height": 30}
    response = api.post("/api/v1/upscale", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "image"
