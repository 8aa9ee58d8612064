"""The low-severity faults of issue #20 (item 13), each hit the way a client or attacker would."""

from __future__ import annotations

import base64
import json
import re
import shutil
import time
from pathlib import Path

import httpx
import pytest

from tests.hardening.rawhttp import request
from tests.harness import REPO, TINY, Daemon

DEEP = 100_000


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_deep_json_nesting_is_a_400_on_every_api(impasto_daemon: Daemon) -> None:
    body = f'{{"prompt": "x", "plugins": {{"a": {_nested(DEEP)}}}}}'
    paths = ["/api/v1/generate", "/api/v1/generate/plan", "/sdapi/v1/txt2img"]
    for path in [*paths, "/v1/images/generations"]:
        response = request(
            impasto_daemon.port,
            "POST",
            path,
            headers={"Content-Type": "application/json"},
            body=body.encode(),
        )
        assert response.status == 400, (path, response.status, response.body[:200])
        assert b"nests too deeply" in response.body


def test_plugin_options_nesting_is_bounded(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        deep = json.loads(_nested(40))
        for path in ["/api/v1/generate", "/api/v1/generate/plan"]:
            response = client.post(path, json={"prompt": "x", "plugins": {"a": deep}})
            assert response.status_code == 422, path
            assert response.json()["errors"] == [
                {"field": "plugins", "message": "nests deeper than 32 levels"}
            ]


@pytest.mark.parametrize(
    "raw", [f"[0, {10**30}]", f"[{10**400}, 1]", "[1e999, 1]", "[NaN, 1]", "[0, -1]"]
)
def test_out_of_range_history_cursor_is_a_422(impasto_daemon: Daemon, raw: str) -> None:
    cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    with impasto_daemon.client() as client:
        response = client.get("/api/v1/history", params={"cursor": cursor})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


@pytest.mark.parametrize("since", ["1e30", str(10**30), "-1"])
def test_events_since_out_of_range_is_a_422(impasto_daemon: Daemon, since: str) -> None:
    with impasto_daemon.client() as client:
        response = client.get("/api/v1/events", params={"since": since})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "since"


@pytest.mark.parametrize("cursor", [("since", str(10**18)), ("Last-Event-ID", "9" * 40)])
def test_events_after_a_cursor_past_the_end_follow_live_events(
    impasto_daemon: Daemon, cursor: tuple[str, str]
) -> None:
    """Not a silent stream: a cursor beyond the newest event gets the events that come next."""
    name, value = cursor
    params = {"since": value} if name == "since" else {}
    headers = {} if name == "since" else {name: value}
    with (
        httpx.Client(base_url=impasto_daemon.url, timeout=30) as reader,
        reader.stream("GET", "/api/v1/events", params=params, headers=headers) as stream,
    ):
        assert stream.status_code == 200
        with impasto_daemon.client() as client:
            client.post("/api/v1/queue/pause")
            client.post("/api/v1/queue/resume")
        for line in stream.iter_lines():
            if line.startswith("data:"):
                assert json.loads(line[5:])["type"] == "queue"
                break


def test_a1111_options_are_bounded(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        huge = client.post("/sdapi/v1/options", json={"big": "x" * 100_000})
        assert huge.status_code == 422
        assert huge.json()["detail"][0]["loc"] == ["body", "big"]
        many = client.post("/sdapi/v1/options", json={f"k{i}": 1 for i in range(1000)})
        assert many.status_code == 422
        assert client.post("/sdapi/v1/options", json={"CLIP_stop_at_last_layers": 2}).is_success
        options = client.get("/sdapi/v1/options").json()
        assert options["CLIP_stop_at_last_layers"] == 2 and "big" not in options


def test_rate_limit_is_per_connection_with_retry_after(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path, rate_limit=3).start()
    body = {"prompt": "rate", **TINY}
    with daemon.client() as script:
        codes = [script.post("/api/v1/generate", json=body).status_code for _ in range(3)]
        assert codes == [202, 202, 202]
        limited = script.post("/api/v1/generate", json=body)
        assert limited.status_code == 429
        assert 0 < int(limited.headers["retry-after"]) <= 60
        assert "rate_limit" in limited.json()["detail"]
        assert script.get("/api/v1/queue").status_code == 200  # reads are not limited
        # Another client (a browser tab, another script) has its own budget.
        with daemon.client() as ui:
            assert ui.post("/api/v1/generate", json=body).status_code == 202
        # A spelling of the path does not escape the limit.
        assert request(
            daemon.port,
            "POST",
            "//api/v1/generate/",
            headers={"Content-Type": "application/json"},
            body=json.dumps(body).encode(),
        ).status in (202, 429)


@pytest.mark.parametrize("token", ["   ", "\t", " padded-token "])
def test_blank_or_padded_token_is_refused_at_startup(tmp_path: Path, token: str) -> None:
    daemon = Daemon(tmp_path, token=token)
    result = daemon.refused()
    assert result.returncode == 1
    assert "token is blank or starts or ends with whitespace" in result.stderr
    assert not daemon.discovery_file.exists()


@pytest.mark.parametrize(
    "host",
    [
        "[::1]evil.com",
        "127.0.0.1:{port}@evil.com",
        "localhost:{port}:80",
        "localhost/evil",
        "localhost evil.com",
        "evil.com#localhost",
        "",
    ],
)
def test_malformed_host_headers_are_refused(impasto_daemon: Daemon, host: str) -> None:
    value = host.format(port=impasto_daemon.port)
    response = _with_host(impasto_daemon.port, value)
    assert response.status == 403, (value, response.status)


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost", "[::1]:{port}", "LOCALHOST"])
def test_loopback_host_headers_pass(impasto_daemon: Daemon, host: str) -> None:
    assert _with_host(impasto_daemon.port, host.format(port=impasto_daemon.port)).status == 200


def _with_host(port: int, host: str):  # type: ignore[no-untyped-def]
    import socket

    from tests.hardening.rawhttp import RawResponse

    head = f"GET /api/v1/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return RawResponse(int(data.split(b" ", 2)[1]))


def test_truncated_unet_is_listed_as_unusable_with_the_reason(impasto_daemon: Daemon) -> None:
    folder = impasto_daemon.data_dir / "models" / "broken-unet"
    shutil.copytree(REPO / "models" / "tiny" / "sd-tiny", folder)
    unet = folder / "unet" / "model.onnx"
    unet.write_bytes(unet.read_bytes()[:1000])
    try:
        with impasto_daemon.client() as client:
            listed = {m["id"]: m for m in client.get("/api/v1/models").json()}
            assert "broken-unet" in listed
            assert listed["broken-unet"]["problem"].startswith("unusable:")
            assert listed["sd-tiny"]["problem"] == ""
            job = client.post("/api/v1/generate", json={"prompt": "x", "model": "broken-unet"})
            assert job.status_code == 422 and job.json()["errors"][0]["field"] == "model"
            # Refused by name with the reason, not as "not installed" while listed.
            reason = listed["broken-unet"]["problem"]
            assert job.json()["errors"][0]["message"] == (
                f"model 'broken-unet' cannot be used: {reason}"
            )
            load = client.post("/api/v1/models/broken-unet/load")
            assert load.status_code == 422 and reason in load.text
            names = [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
            assert not any("broken-unet" in name for name in names)
            # It can be looked at and removed through the API, as its problem says to.
            assert client.get("/api/v1/models/broken-unet").json()["problem"] == reason
            assert client.delete("/api/v1/models/broken-unet").status_code == 200
            assert not folder.exists()
            assert client.get("/api/v1/models/broken-unet").status_code == 404
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", ""]
)
def test_generate_refuses_bodies_that_are_not_json(
    impasto_daemon: Daemon, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"prompt": "csrf", **TINY}).encode()
    response = request(impasto_daemon.port, "POST", "/api/v1/generate", headers=headers, body=body)
    assert response.status == 415, (content_type, response.status)
    assert b"application/json" in response.body


def _routes_reading(daemon: Daemon, media_type: str) -> list[tuple[str, str]]:
    """(method, path) of every route whose body the API document lists as ``media_type``."""
    schema = request(daemon.port, "GET", "/schema/openapi.json").json()
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", template))
        for template, operations in schema["paths"].items()
        for method, operation in operations.items()
        if media_type in operation.get("requestBody", {}).get("content", {})
    ]


def test_every_json_route_refuses_text_plain(impasto_daemon: Daemon) -> None:
    """What a cross-site form can send without a preflight is never read as JSON."""
    routes = _routes_reading(impasto_daemon, "application/json")
    for method, path in routes:
        headers = {"Content-Type": "text/plain"}
        response = request(impasto_daemon.port, method, path, headers=headers, body=b"{}")
        assert response.status == 415, (method, path, response.status)
    wanted = {"/api/v1/generate", "/api/v1/generate/plan", "/sdapi/v1/txt2img"}
    assert wanted | {"/v1/images/generations"} <= {path for _, path in routes}


def test_every_form_route_refuses_a_body_that_is_not_a_form(impasto_daemon: Daemon) -> None:
    """A route that takes files says what to send, as the JSON routes do, instead of
    "Invalid multipart/form-data" (and the OpenAI routes in OpenAI's error shape)."""
    routes = _routes_reading(impasto_daemon, "multipart/form-data")
    for method, path in routes:
        for content_type in ("application/json", "application/x-www-form-urlencoded"):
            headers = {"Content-Type": content_type}
            response = request(impasto_daemon.port, method, path, headers=headers, body=b"{}")
            assert response.status == 415, (method, path, response.status)
            text = response.body.decode()
            assert "send multipart/form-data" in text and content_type in text, text
            if path.startswith("/v1/"):
                assert response.json()["error"]["type"] == "invalid_request_error"
    wanted = {"/api/v1/images", "/v1/images/edits", "/v1/images/variations"}
    assert wanted <= {path for _, path in routes}


def test_json_with_a_charset_is_accepted(impasto_daemon: Daemon) -> None:
    response = request(
        impasto_daemon.port,
        "POST",
        "/api/v1/generate",
        headers={"Content-Type": "application/json; charset=utf-8"},
        body=json.dumps({"prompt": "charset", **TINY}).encode(),
    )
    assert response.status == 202
    time.sleep(0)  # the job runs on; later tests do not depend on it
