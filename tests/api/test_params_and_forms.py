"""What clients send in other shapes than a JSON body: lists in the query string (repeated, as
requests and axios send them), headers, multipart file parts and bodies past the size limit.
Each wrong one is a 4xx naming what was sent and what is allowed."""

from __future__ import annotations

import base64
import io
from pathlib import Path

from litestar.testing import TestClient
from PIL import Image

from impasto.api.app import create_app
from impasto.services.container import Services
from tests.api.conftest import make_services

TINY = {"width": 64, "height": 64, "steps": 2}


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), 128).save(buf, format="PNG")
    return buf.getvalue()


def submit(api: TestClient) -> str:
    response = api.post("/api/v1/generate", json={"prompt": "a cat", **TINY})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def ids(response: object) -> set[str]:
    return {job["id"] for job in response.json()["items"]}  # type: ignore[attr-defined]


def test_a_list_parameter_repeated_is_read_as_its_comma_form(
    api: TestClient, services: Services
) -> None:
    cancelled, failed, queued = submit(api), submit(api), submit(api)
    api.post(f"/api/v1/generate/{cancelled}/cancel")
    services.jobs.store.mark_failed(failed, "worker killed by signal 9")
    repeated = api.get("/api/v1/history", params=[("status", "cancelled"), ("status", "failed")])
    comma = api.get("/api/v1/history", params={"status": "cancelled,failed"})
    assert repeated.status_code == 200, repeated.text
    assert ids(repeated) == ids(comma) == {cancelled, failed}
    both = api.get("/api/v1/history", params=[("status", "cancelled,failed"), ("status", "queued")])
    assert ids(both) == {cancelled, failed, queued}
    bad = api.get("/api/v1/history", params=[("status", "failed"), ("status", "done")])
    assert bad.status_code == 422
    [error] = bad.json()["errors"]
    assert error["field"] == "status" and "done" in error["message"]
    assert "queued, processing, completed, failed, cancelled" in error["message"]
    models = api.get("/api/v1/models", params=[("type", "lora"), ("type", "checkpoint")])
    kinds = {model["type"] for model in models.json()}
    assert models.status_code == 200 and kinds == {"checkpoint"}, models.text


def test_a_single_value_parameter_sent_twice_is_named(api: TestClient) -> None:
    for path, name, values in (
        ("/api/v1/history", "limit", ("5", "10")),
        ("/api/v1/queue", "offset", ("0", "1")),
        ("/api/v1/history", "model", ("sd-tiny", "other")),
    ):
        response = api.get(path, params=[(name, value) for value in values])
        assert response.status_code == 422, (path, response.text)
        [error] = response.json()["errors"]
        assert error == {
            "field": name,
            "message": "was given 2 times; this parameter takes one value",
        }


def test_a_header_out_of_range_is_named_as_sent_with_its_limit_in_words(api: TestClient) -> None:
    response = api.post(
        "/api/v1/generate", json={"prompt": "a cat", **TINY}, headers={"Idempotency-Key": "k" * 201}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["errors"] == [
        {
            "field": "Idempotency-Key",
            "message": "must be at most 200 characters long; this one is 201",
        }
    ]
    assert body["detail"].startswith("Idempotency-Key: ")


def test_the_upload_form_says_what_its_file_part_must_be(api: TestClient) -> None:
    png = png_bytes()
    cases = [
        ([("file", ("a.png", png, "image/png")), ("file", ("b.png", png, "image/png"))], None),
        ([("other", ("a.png", png, "image/png"))], {"file": "not a file"}),
        ([("other", ("a.png", png, "image/png"))], None),
    ]
    sent = [
        "it was sent more than once",
        "it was sent as a text field, not a file",
        "none was sent",
    ]
    for (files, data), what in zip(cases, sent, strict=True):
        response = api.post("/api/v1/images", files=files, data=data)
        assert response.status_code == 422, response.text
        message = f"send exactly one file part named file; {what}"
        assert response.json()["errors"] == [{"field": "file", "message": message}]


def test_an_upload_too_large_is_told_its_own_size(tmp_path: Path) -> None:
    services = make_services(tmp_path, max_upload_size=1000)
    with TestClient(app=create_app(services)) as api:
        big = api.post("/api/v1/images", files={"file": ("a.png", b"x" * 2500, "image/png")})
        inline = api.post(
            "/api/v1/generate/plan",
            json={"prompt": "a cat", **TINY, "init_image": base64.b64encode(b"x" * 1875).decode()},
        )
    services.extra["db"].close()
    assert big.status_code == 422
    assert big.json()["errors"] == [
        {
            "field": "file",
            "message": "image is 2500 bytes; the limit is 1000 bytes (the max_upload_size setting)",
        }
    ]
    assert inline.json()["errors"][0]["message"].startswith("image is 1875 bytes;")


def test_a_body_past_the_limit_is_told_the_setting_and_its_value(tmp_path: Path) -> None:
    # A queue that takes nothing: a body let through is answered at once (429), never waits.
    services = make_services(tmp_path, max_body_size=4096, max_queue=0)
    with TestClient(app=create_app(services)) as api:
        native = api.post("/api/v1/generate", json={"prompt": "x", "init_image": "A" * 10_000})
        a1111 = api.post("/sdapi/v1/txt2img", json={"prompt": "x", "init_images": ["A" * 10_000]})
        assert services.jobs.store.count_queued() == 0
    services.extra["db"].close()
    assert native.status_code == 413 and a1111.status_code == 413
    detail = native.json()["detail"]
    assert "the limit is 4096 bytes (the max_body_size setting)" in detail, detail
    assert "max_body_size" in a1111.json()["detail"]
