"""Request building and response parsing, against a MockTransport."""

from __future__ import annotations

import inspect
import json

import httpx
import msgspec
import pytest
from client_fakes import FakeDaemon, job

from impasto.client import (
    ApiError,
    AsyncClient,
    Client,
    DaemonNotRunning,
    FieldError,
    ImpastoError,
    JobStatus,
    UnsendableRequest,
    core,
)


def client_for(daemon: FakeDaemon, token: str = "") -> Client:
    return Client(transport=daemon.transport(), token=token)


def test_submit_sends_merged_body_and_idempotency_key(daemon: FakeDaemon) -> None:
    daemon.routes[("POST", "/api/v1/generate")] = httpx.Response(
        202, json={"id": "abc", "status": "queued", "position": 3}
    )
    with client_for(daemon, token="s3cret") as client:
        submitted = client.submit({"prompt": "a cat", "steps": 10}, steps=4, idempotency_key="k1")
    job_id, position = submitted
    assert (job_id, position) == ("abc", 3)
    sent = daemon.requests[-1]
    assert sent.method == "POST"
    assert json.loads(sent.content) == {"prompt": "a cat", "steps": 4}
    assert sent.headers["Idempotency-Key"] == "k1"
    assert sent.headers["Authorization"] == "Bearer s3cret"
    assert sent.headers["Content-Type"] == "application/json"


def test_a_submit_replayed_after_its_job_left_the_queue_has_no_position(
    daemon: FakeDaemon,
) -> None:
    # The same Idempotency-Key after the job ran: 200, the job, and null for its position.
    daemon.routes[("POST", "/api/v1/generate")] = httpx.Response(
        200, json={"id": "abc", "status": "completed", "position": None}
    )
    with client_for(daemon) as client:
        assert client.submit({"prompt": "a cat"}, idempotency_key="k1") == ("abc", None)


def test_a_number_json_cannot_carry_is_refused_before_sending(daemon: FakeDaemon) -> None:
    # msgspec writes NaN and infinity as null, which the daemon reads as "the model's default".
    body = {
        "prompt": "a cat",
        "cfg_scale": float("nan"),
        "loras": [{"name": "a", "weight": float("inf")}],
        "hires": {"scale": float("-inf")},
        "strength": 0.5,
    }
    with client_for(daemon) as client, pytest.raises(UnsendableRequest) as refused:
        client.submit(body)
    fields = [error.field for error in refused.value.errors]
    assert fields == ["cfg_scale", "loras[0].weight", "hires.scale"]
    assert "finite" in str(refused.value) and isinstance(refused.value, ImpastoError)
    assert not daemon.requests  # nothing was sent


def test_no_token_sends_no_authorization(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/health")] = httpx.Response(
        200, json={"status": "ok", "version": "9.9"}
    )
    with client_for(daemon) as client:
        assert client.health().version == "9.9"
    assert "Authorization" not in daemon.requests[-1].headers


def test_status_decodes_results_and_times(daemon: FakeDaemon) -> None:
    result = {"index": 0, "url": "/api/v1/images/j/0", "seed": 42, "width": 64, "height": 64}
    daemon.jobs["j"] = job("j", "completed", results=[result], progress=1.0)
    with client_for(daemon) as client:
        status = client.status("j")
    assert isinstance(status, JobStatus)
    assert status.finished
    assert status.results[0].seed == 42
    assert status.created_at is not None and status.created_at.year == 2025


def test_priority_cancel_delete_and_queue_calls(daemon: FakeDaemon) -> None:
    daemon.routes[("PATCH", "/api/v1/generate/j")] = httpx.Response(200, json=job("j", priority=5))
    daemon.routes[("POST", "/api/v1/generate/j/cancel")] = httpx.Response(
        200, json=job("j", "cancelled")
    )
    daemon.routes[("DELETE", "/api/v1/generate/j")] = httpx.Response(204)
    daemon.routes[("POST", "/api/v1/queue/pause")] = httpx.Response(200, json={"paused": True})
    daemon.routes[("POST", "/api/v1/queue/resume")] = httpx.Response(200, json={"paused": False})
    daemon.routes[("GET", "/api/v1/queue")] = httpx.Response(
        200, json={"paused": True, "items": [job("j")]}
    )
    with client_for(daemon) as client:
        assert client.set_priority("j", 5).priority == 5
        assert json.loads(daemon.requests[-1].content) == {"priority": 5}
        assert client.cancel("j").status == "cancelled"
        assert client.delete("j") is None
        assert client.pause() is True
        assert client.resume() is False
        state = client.queue()
    assert state.paused and [item.id for item in state.items] == ["j"]
    methods = [(r.method, r.url.path) for r in daemon.requests]
    assert ("DELETE", "/api/v1/generate/j") in methods


def test_clear_queue_sends_running_only_when_asked(daemon: FakeDaemon) -> None:
    daemon.routes[("POST", "/api/v1/queue/clear")] = httpx.Response(
        200, json={"cancelled": ["b", "a"]}
    )
    with client_for(daemon) as client:
        assert client.clear_queue() == ["b", "a"]
        assert client.clear_queue(running=True) == ["b", "a"]
    sent = [(r.method, r.url.path, dict(r.url.params)) for r in daemon.requests]
    assert sent == [
        ("POST", "/api/v1/queue/clear", {}),
        ("POST", "/api/v1/queue/clear", {"running": "true"}),
    ]


def test_the_async_client_offers_every_call_of_the_sync_one() -> None:
    """One client per style, the same calls with the same parameters (close is aclose)."""
    calls = {n for n in dir(Client) if not n.startswith("_")} - {"close"}
    acalls = {n for n in dir(AsyncClient) if not n.startswith("_")} - {"aclose"}
    assert calls == acalls
    for name in calls:
        if isinstance(getattr(Client, name), property):
            assert isinstance(getattr(AsyncClient, name), property), name
            continue
        sync, asynchronous = (
            inspect.signature(getattr(Client, name)),
            inspect.signature(getattr(AsyncClient, name)),
        )
        assert list(sync.parameters) == list(asynchronous.parameters), name


def test_history_follows_cursors_until_the_last_page(daemon: FakeDaemon) -> None:
    pages = {
        None: {"items": [job("a", "completed"), job("b", "failed")], "next_cursor": "c2"},
        "c2": {"items": [job("c", "completed")], "next_cursor": None},
    }

    def history(request: httpx.Request) -> httpx.Response:
        daemon.requests.append(request)
        return httpx.Response(200, json=pages[request.url.params.get("cursor")])

    client = Client(transport=httpx.MockTransport(history))
    found = [
        item.id
        for page in client.history(status=["completed", "failed"], limit=2)
        for item in page.items
    ]
    assert found == ["a", "b", "c"]
    first, second = (dict(r.url.params) for r in daemon.requests)
    assert first == {"limit": "2", "status": "completed,failed"}
    assert second == {"limit": "2", "status": "completed,failed", "cursor": "c2"}


def test_upload_sends_multipart_file_and_returns_id(daemon: FakeDaemon, tmp_path) -> None:
    picture = tmp_path / "init.png"
    picture.write_bytes(b"\x89PNG fake")
    daemon.routes[("POST", "/api/v1/images")] = httpx.Response(
        201, json={"id": "up1", "width": 8, "height": 8, "mode": "RGB"}
    )
    with client_for(daemon) as client:
        assert client.upload_image(picture) == "up1"
    sent = daemon.requests[-1]
    assert sent.headers["Content-Type"].startswith("multipart/form-data")
    assert b'name="file"; filename="init.png"' in sent.content
    assert b"Content-Type: image/png" in sent.content
    assert b"\x89PNG fake" in sent.content


def test_download_image_returns_bytes(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/images/j/1")] = httpx.Response(200, content=b"PNGDATA")
    with client_for(daemon) as client:
        assert client.download_image("j", 1) == b"PNGDATA"
        assert client.download_image("j", 1, thumb=256) == b"PNGDATA"
    assert daemon.requests[-1].url.params["thumb"] == "256"


def test_an_upscale_may_take_as_long_as_the_work(daemon: FakeDaemon) -> None:
    # A model upscale on a CPU takes minutes: the client's 30 s read timeout failed it.
    daemon.routes[("POST", "/api/v1/upscale")] = httpx.Response(200, content=b"PNG")
    daemon.routes[("GET", "/api/v1/upscalers")] = httpx.Response(200, json=[])
    with Client(transport=daemon.transport(), timeout=30.0) as client:
        assert client.upscale("upload:x", "lanczos") == b"PNG"
        client.upscalers()
    upscale, listing = daemon.requests[-2:]
    assert upscale.extensions["timeout"]["read"] == core.UPSCALE_TIMEOUT
    assert upscale.extensions["timeout"]["connect"] == core.CONNECT_TIMEOUT
    assert listing.extensions["timeout"]["read"] == 30.0


def test_models_samplers_and_system_decode(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/models")] = httpx.Response(
        200,
        json=[
            {
                "id": "sd-tiny",
                "name": "Tiny",
                "type": "checkpoint",
                "family": "sd1",
                "path": "/m",
                "size": 10,
                "read_only": True,
                "inpaint": False,
                "prediction_type": "epsilon",
                "defaults": {
                    "width": 64,
                    "height": 64,
                    "steps": 4,
                    "cfg_scale": 5.0,
                    "sampler": "euler",
                },
            }
        ],
    )
    daemon.routes[("GET", "/api/v1/samplers")] = httpx.Response(
        200, json=[{"id": "euler_a", "name": "Euler a", "schedules": ["default", "karras"]}]
    )
    daemon.routes[("GET", "/api/v1/system")] = httpx.Response(
        200,
        json={
            "version": "0.1.0",
            "provider": {
                "name": "cpu",
                "providers": ["CPUExecutionProvider"],
                "rejected": [{"name": "cuda", "reason": "no GPU"}],
            },
            "gpus": [],
            "memory": {"total": 8, "available": 4},
            "queue": {"queued": 2, "processing": 1, "paused": False},
            "loaded_models": [{"model": "sd-tiny", "expires_at": None}],
            "workers": [{"id": "worker-0", "pid": 5, "state": "busy", "job_id": "j"}],
            "new_field_from_a_newer_daemon": 1,
        },
    )
    with client_for(daemon) as client:
        assert client.models()[0].defaults.steps == 4
        assert client.samplers()[0].schedules == ["default", "karras"]
        info = client.system()
    assert info.provider.rejected[0].reason == "no GPU"
    assert (info.queue.queued, info.queue.processing) == (2, 1)
    assert info.workers[0].job_id == "j"


def test_422_maps_to_api_error_naming_the_field(daemon: FakeDaemon) -> None:
    daemon.routes[("POST", "/api/v1/generate")] = httpx.Response(
        422,
        json={
            "status_code": 422,
            "detail": "Validation failed for POST /api/v1/generate",
            "errors": [
                {"field": "width", "message": "must be a multiple of 8 between 64 and 2048"}
            ],
        },
    )
    with client_for(daemon) as client, pytest.raises(ApiError) as caught:
        client.submit(prompt="a cat", width=65)
    error = caught.value
    assert error.status == 422
    assert error.errors[0].field == "width"
    assert "width: must be a multiple of 8" in str(error)
    assert "Validation failed" in str(error)


def test_field_already_in_detail_is_not_repeated() -> None:
    error = ApiError(422, "width: too big", [FieldError("width", "too big")])
    assert str(error) == "width: too big (HTTP 422)"


def test_non_json_error_and_retry_after(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/queue")] = httpx.Response(500, text="boom")
    daemon.routes[("POST", "/api/v1/generate")] = httpx.Response(
        429, headers={"Retry-After": "7"}, json={"status_code": 429, "detail": "queue full"}
    )
    with client_for(daemon) as client:
        with pytest.raises(ApiError, match="boom") as server_error:
            client.queue()
        with pytest.raises(ApiError) as full:
            client.submit(prompt="x")
    assert server_error.value.status == 500
    assert (full.value.status, full.value.retry_after) == (429, 7.0)


def test_unexpected_body_raises_impasto_error(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/health")] = httpx.Response(200, json={"unexpected": True})
    with client_for(daemon) as client, pytest.raises(ImpastoError, match="unexpected answer"):
        client.health()


def test_connection_refused_is_daemon_not_running() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = Client(transport=httpx.MockTransport(refuse))
    with pytest.raises(DaemonNotRunning, match="impasto serve"):
        client.health()


def test_results_tolerate_unknown_fields() -> None:
    body = job("j", extra="ignored")
    assert msgspec.convert(body, JobStatus).id == "j"


# The parameters whose value becomes a segment of the request's path.
PATH_IDS = ("job_id", "install_id", "model_id", "name")
EXTRA_ARGS = {"download_image": (0,), "set_priority": (1,), "set_plugin_enabled": (True,)}


def calls_with_a_path_id() -> list[str]:
    """Every Client method whose first parameter is an id that goes in the path."""
    return [
        name
        for name, method in inspect.getmembers(Client, inspect.isfunction)
        if not name.startswith("_")
        and list(inspect.signature(method).parameters)[1:2] in ([p] for p in PATH_IDS)
    ]


def test_every_id_in_a_path_is_sent_as_one_segment(daemon: FakeDaemon) -> None:
    """``rm "model?force=true"`` must not send force=true, ``CON/../tiny`` must not name tiny."""
    names = calls_with_a_path_id()
    assert {"remove_model", "cancel", "download_image", "set_plugin_enabled"} <= set(names)
    assert {"cancel_install", "install_status", "load_model", "model", "status"} <= set(names)
    for tricky, sent in [
        ("tiny?force=true#x", b"/tiny%3Fforce%3Dtrue%23x"),
        ("..", b"/%2E%2E"),
        (".", b"/%2E"),
        ("50% off", b"/50%25%20off"),
    ]:
        for name in names:
            daemon.requests.clear()
            with client_for(daemon) as client, pytest.raises(ApiError):  # the fake's 404
                getattr(client, name)(tricky, *EXTRA_ARGS.get(name, ()))
            request = daemon.requests[0]
            assert sent in request.url.raw_path, (name, request.url)
            assert request.url.raw_path.startswith(b"/api/v1/"), (name, request.url)
            assert b"force" not in request.url.query and not request.url.fragment, name


def test_an_empty_id_or_one_with_a_slash_is_refused_before_sending(daemon: FakeDaemon) -> None:
    """GET /models/ would answer the list of models; the daemon decodes %2F before it routes,
    so ``installs/ID`` (``CON/../tiny``) would reach another route even when encoded."""
    with client_for(daemon) as client:
        for name in calls_with_a_path_id():
            for tricky, message in [("", "empty id"), ("CON/../tiny", "ids hold no '/'")]:
                with pytest.raises(ImpastoError, match=message):
                    getattr(client, name)(tricky, *EXTRA_ARGS.get(name, ()))
    assert not daemon.requests
