"""End to end against a real daemon subprocess: TCP and Unix socket, events, cancel, outputs."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets.sync.client as ws_client
from PIL import Image
from websockets.exceptions import ConnectionClosed

from impasto.formats.png import read_png_metadata
from tests.documented import event_data_schema, schema_errors
from tests.harness import TINY, Daemon, wait_status


def sse_events(
    client: httpx.Client, path: str, until: str, timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Read an SSE stream until an event of type ``until`` arrives."""
    events: list[dict[str, Any]] = []
    with client.stream("GET", path, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in fields:
                    event = json.loads(fields["data"])
                    assert str(event["seq"]) == fields["id"]
                    assert event["type"] == fields["event"]
                    events.append(event)
                    if event["type"] == until:
                        return events
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(":")
                fields[key] = value.lstrip(" ")
    return events


@pytest.mark.parametrize("transport", ["tcp", "socket"])
def test_generate_end_to_end(impasto_daemon: Daemon, transport: str) -> None:
    client = impasto_daemon.client() if transport == "tcp" else impasto_daemon.socket_client()
    with client:
        response = client.post(
            "/api/v1/generate", json={"prompt": f"a lighthouse over {transport}", "seed": 7, **TINY}
        )
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "queued" and isinstance(body["position"], int)
        done = wait_status(client, body["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        assert done["progress"] == 1.0 and done["current_step"] == TINY["steps"]
        [result] = done["results"]
        assert result["seed"] == 7
        image = client.get(result["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        meta = read_png_metadata(image.content)
        assert "a lighthouse" in meta["parameters"] and "Seed: 7" in meta["parameters"]
        assert meta["impasto"]["seed"] == 7 and meta["impasto"]["model"] == "sd-tiny"
        png = Image.open(__import__("io").BytesIO(image.content))
        assert png.size == (64, 64)
        # The design document's GenerationResult: the file (relative to the output folder,
        # so no local path reaches a client) and its metadata.
        path = Path(result["image_path"])
        assert not path.is_absolute() and ".." not in path.parts
        assert (impasto_daemon.data_dir / "outputs" / path).read_bytes() == image.content
        assert result["metadata"]["parameters"] == meta["parameters"]
        assert json.loads(result["metadata"]["impasto"]) == meta["impasto"]
        # The worker keeps ONNX Runtime's optimised models for faster loads next time.
        assert list((impasto_daemon.data_dir / "cache" / "ort").rglob("*.onnx"))


def test_models_carry_the_design_documents_field_names(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        models = client.get("/api/v1/models").json()
        one = client.get("/api/v1/models/sd-tiny").json()
    assert [m for m in models if m["id"] == "sd-tiny"] == [one]
    for model in models:
        assert model["file_path"] == model["path"]
        assert impasto_daemon.local_path(model["path"]).exists()  # named by its folder's label
        assert model["file_size"] == model["size"] > 0
        assert model["is_active"] is model["active"]


def test_same_seed_same_pixels(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        ids = [
            client.post("/api/v1/generate", json={"prompt": "twins", "seed": 99, **TINY}).json()[
                "id"
            ]
            for _ in range(2)
        ]
        images = []
        for job_id in ids:
            done = wait_status(client, job_id, {"completed"})
            images.append(client.get(done["results"][0]["url"]).content)
        pixels = [Image.open(__import__("io").BytesIO(b)).tobytes() for b in images]
        assert pixels[0] == pixels[1]


def test_batch_reports_each_seed(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post(
            "/api/v1/generate", json={"prompt": "batch", "seed": 10, "batch_size": 3, **TINY}
        ).json()
        done = wait_status(client, job["id"], {"completed"})
        assert [r["seed"] for r in done["results"]] == [10, 11, 12]
        assert [r["index"] for r in done["results"]] == [0, 1, 2]


def test_an_int64_seed_runs_and_its_batch_wraps_to_seed_zero(impasto_daemon: Daemon) -> None:
    """The design document's seeds are int64 (ComfyUI's below 2**63 among them): the largest
    runs, its batch's next image is seed 0 (a seed a request can name again), and the PNG
    text says so."""
    top = 2**63 - 1
    with impasto_daemon.client() as client:
        body = {"prompt": "wide seed", "seed": top, "batch_size": 2, **TINY}
        job = client.post("/api/v1/generate", json=body).json()
        done = wait_status(client, job["id"], {"completed", "failed"})
        assert [r["seed"] for r in done["results"]] == [top, 0], done
        png = client.get(done["results"][0]["url"]).content
        again = client.post("/api/v1/generate", json={**body, "seed": 0, "batch_size": 1})
        zero = wait_status(client, again.json()["id"], {"completed"})
        second = client.get(done["results"][1]["url"]).content
        assert (
            Image.open(io.BytesIO(second)).tobytes()
            == Image.open(io.BytesIO(client.get(zero["results"][0]["url"]).content)).tobytes()
        )
    assert f"Seed: {top}," in read_png_metadata(png)["parameters"]


def test_events_in_order_and_replay(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        # Paused, so every event after 'queued' is sent live (previews are never replayed).
        client.post("/api/v1/queue/pause")
        job = client.post("/api/v1/generate", json={"prompt": "events", "seed": 3, **TINY}).json()
        resume = threading.Timer(0.5, lambda: impasto_daemon.client().post("/api/v1/queue/resume"))
        resume.start()
        live = sse_events(client, f"/api/v1/events?job={job['id']}&since=0", until="completed")
        resume.join()
        types = [e["type"] for e in live]
        assert types[0] == "queued" and types[1] == "started" and types[-1] == "completed"
        progress = [e for e in live if e["type"] == "progress"]
        assert [e["data"]["step"] for e in progress] == list(range(1, TINY["steps"] + 1))
        assert all(e["data"]["preview"].startswith("data:image/jpeg;base64,") for e in progress)
        seqs = [e["seq"] for e in live]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert all(e["job_id"] == job["id"] for e in live)
        # Each event is what the API document says one is (its type one of the documented).
        schema = event_data_schema(client.get("/schema/openapi.json").json(), "/api/v1/events")
        assert [schema_errors(schema, e) for e in live] == [[]] * len(live)

        # A client that reconnects after the 'started' event gets exactly what it missed.
        started_seq = live[1]["seq"]
        replay = sse_events(
            client, f"/api/v1/events?job={job['id']}&since={started_seq}", until="completed"
        )
        assert [e["seq"] for e in replay] == seqs[2:]
        assert "preview" not in replay[0]["data"]  # previews are live-only
        # Last-Event-ID does the same for EventSource reconnects.
        headers = {"Last-Event-ID": str(seqs[-2])}
        with client.stream("GET", f"/api/v1/events?job={job['id']}", headers=headers) as r:
            text = ""
            for chunk in r.iter_text():
                text += chunk
                if "event: completed" in text:
                    break
        assert f"id: {seqs[-1]}" in text and f"id: {seqs[-2]}" not in text


def test_websocket_stream_matches_sse(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "ws", "seed": 4, **TINY}).json()
        wait_status(client, job["id"], {"completed"})
        via_sse = sse_events(client, f"/api/v1/events?job={job['id']}&since=0", until="completed")
    url = impasto_daemon.url.replace("http", "ws") + f"/api/v1/ws?job={job['id']}&since=0"
    received = []
    with ws_client.connect(url) as conn:
        while True:
            event = json.loads(conn.recv(timeout=30))
            received.append(event)
            if event["type"] == "completed":
                break
    assert [e["seq"] for e in received] == [e["seq"] for e in via_sse]
    assert [e["type"] for e in received] == [e["type"] for e in via_sse]


@pytest.mark.parametrize("since", ["-1", "abc", "1.5", str(2**63)])
def test_websocket_with_a_bad_since_is_closed_with_the_rule(
    impasto_daemon: Daemon, since: str
) -> None:
    # Not a refused handshake (a bare 403, as a foreign Origin gets): a close frame saying why.
    url = impasto_daemon.url.replace("http", "ws") + f"/api/v1/ws?since={since}"
    with ws_client.connect(url) as conn, pytest.raises(ConnectionClosed) as closed:
        conn.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert closed.value.rcvd.reason.startswith("since: must be an integer between 0 and")


def test_events_of_a_job_that_does_not_exist_are_refused(impasto_daemon: Daemon) -> None:
    """Not a stream that stays silent for ever: a typo'd or deleted job says so."""
    job = "6f1c2a7e-0000-4000-8000-000000000000"
    with impasto_daemon.client() as client:
        response = client.get(f"/api/v1/events?job={job}", timeout=10)
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == f"no job {job}"
    url = impasto_daemon.url.replace("http", "ws") + f"/api/v1/ws?job={job}"
    with ws_client.connect(url) as conn, pytest.raises(ConnectionClosed) as closed:
        conn.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, f"job: no job {job}")


def test_cancel_running_job_within_one_step(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post(
            "/api/v1/generate",
            json={"prompt": "a long one", "width": 512, "height": 512, "steps": 150, "seed": 1},
        ).json()
        cancelled_at: dict[str, int] = {}

        def cancel_after_two_steps() -> None:
            with (
                impasto_daemon.client() as c,
                c.stream("GET", f"/api/v1/events?job={job['id']}&since=0") as r,
            ):
                for line in r.iter_lines():
                    if line.startswith("data:") and '"type":"progress"' in line:
                        event = json.loads(line[5:])
                        if event["data"]["step"] >= 2:
                            answer = c.post(f"/api/v1/generate/{job['id']}/cancel")
                            assert answer.status_code == 200
                            # The step the daemon had seen when the cancel reached the worker.
                            cancelled_at["step"] = answer.json()["current_step"]
                            return

        thread = threading.Thread(target=cancel_after_two_steps)
        thread.start()
        thread.join(120)
        done = wait_status(client, job["id"], {"cancelled", "completed", "failed"})
        assert done["status"] == "cancelled"
        # Stopped within one sampler step of the cancel request (plus one in flight).
        assert done["current_step"] <= cancelled_at["step"] + 2 < 150
        assert done["results"] == []
        assert client.post(f"/api/v1/generate/{job['id']}/cancel").status_code == 409


def test_queue_order_priority_and_pause(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        assert client.post("/api/v1/queue/pause").json() == {"paused": True}
        try:
            low = client.post("/api/v1/generate", json={"prompt": "low", **TINY}).json()
            high = client.post(
                "/api/v1/generate", json={"prompt": "high", "priority": 5, **TINY}
            ).json()
            queue = client.get("/api/v1/queue").json()
            assert queue["paused"] is True
            assert [j["id"] for j in queue["items"]][:2] == [high["id"], low["id"]]
            bumped = client.patch(f"/api/v1/generate/{low['id']}", json={"priority": 50}).json()
            assert bumped["priority"] == 50 and bumped["position"] == 0
            time.sleep(0.5)
            assert client.get(f"/api/v1/generate/{low['id']}").json()["status"] == "queued"
        finally:
            client.post("/api/v1/queue/resume")
        first = wait_status(client, low["id"], {"completed"})
        second = wait_status(client, high["id"], {"completed"})
        assert first["started_at"] <= second["started_at"]


def test_image_etag_and_thumbnail(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "etag", **TINY}).json()
        url = wait_status(client, job["id"], {"completed"})["results"][0]["url"]
        first = client.get(url)
        assert first.headers["etag"] and "max-age" in first.headers["cache-control"]
        etag = first.headers["etag"]
        # RFC 9110: a list of tags, a weak one (compared weakly), or "*" match; others do not.
        for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
            again = client.get(url, headers={"If-None-Match": header})
            assert again.status_code == 304 and again.content == b"", header
            assert again.headers["etag"] == etag
        for header in ('"other"', etag.strip('"'), f'"x,{etag.strip(chr(34))}"'):
            assert client.get(url, headers={"If-None-Match": header}).status_code == 200, header
        thumb = client.get(url, params={"thumb": 32})
        assert thumb.headers["content-type"] == "image/jpeg"
        assert Image.open(__import__("io").BytesIO(thumb.content)).size == (32, 32)


def test_delete_removes_record_and_files(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        job = client.post("/api/v1/generate", json={"prompt": "delete me", **TINY}).json()
        done = wait_status(client, job["id"], {"completed"})
        files = list(impasto_daemon.data_dir.glob(f"outputs/*/{job['id']}-*.png"))
        assert len(files) == 1
        assert client.delete(f"/api/v1/generate/{job['id']}").status_code == 204
        assert not files[0].exists()
        assert client.get(f"/api/v1/generate/{job['id']}").status_code == 404
        assert client.get(done["results"][0]["url"]).status_code == 404


def test_img2img_and_inpaint_through_upload(impasto_daemon: Daemon, tmp_path: Any) -> None:
    import io

    source = Image.new("RGB", (80, 48), (200, 30, 30))
    buf = io.BytesIO()
    source.save(buf, format="PNG")
    with impasto_daemon.client() as client:
        uploaded = client.post(
            "/api/v1/images", files={"file": ("init.png", buf.getvalue(), "image/png")}
        )
        assert uploaded.status_code == 201, uploaded.text
        upload = uploaded.json()
        assert (upload["width"], upload["height"]) == (80, 48)
        img2img = client.post(
            "/api/v1/generate",
            json={
                "prompt": "img2img",
                "init_image": f"upload:{upload['id']}",
                "strength": 0.5,
                **TINY,
            },
        ).json()
        done = wait_status(client, img2img["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (16, 16, 48, 48))
        mbuf = io.BytesIO()
        mask.save(mbuf, format="PNG")
        import base64

        inpaint = client.post(
            "/api/v1/generate",
            json={
                "prompt": "inpaint",
                "model": "sd-tiny-inpaint",
                "init_image": f"upload:{upload['id']}",
                "mask_image": "data:image/png;base64," + base64.b64encode(mbuf.getvalue()).decode(),
                **TINY,
            },
        ).json()
        done = wait_status(client, inpaint["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        assert done["request"]["mask_image"].startswith("upload:")


def test_a_transparent_init_image_of_another_size_runs_as_white(impasto_daemon: Daemon) -> None:
    """An init image the daemon resizes to width x height is flattened onto white first: its
    transparent parts (storing black) do not turn black in the resize (at strength 0 the
    result is the init image through the VAE)."""

    def run(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        body = {"prompt": "clear", **TINY, "init_image": data, "strength": 0.0, "seed": 3}
        job = client.post("/api/v1/generate", json=body).json()
        done = wait_status(client, job["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        return Image.open(io.BytesIO(client.get(done["results"][0]["url"]).content)).tobytes()

    with impasto_daemon.client() as client:
        clear = run(Image.new("RGBA", (32, 32), (0, 0, 0, 0)))
        assert clear == run(Image.new("RGB", (32, 32), (255, 255, 255)))
        assert clear != run(Image.new("RGB", (32, 32), (0, 0, 0)))


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_color_correction_takes_the_references_colours(impasto_daemon: Daemon) -> None:
    """Through the worker: a corrected run is the plain run's picture with the reference's
    colours (the arithmetic: tests/engine/test_color_correction.py), the reference sent inline
    is stored once as an upload, and the field is refused where there is nothing to match."""
    from impasto.engine.color_correction import color_corrected

    init = Image.new("RGB", (64, 64), (200, 60, 40))
    reference = Image.new("RGB", (16, 16), (30, 90, 220))
    body = {"prompt": "recoloured", **TINY, "init_image": _data_url(init), "seed": 9}

    def run(extra: dict[str, Any]) -> tuple[dict[str, Any], Image.Image]:
        job = client.post("/api/v1/generate", json={**body, **extra}).json()
        done = wait_status(client, job["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        png = client.get(done["results"][0]["url"]).content
        return done, Image.open(io.BytesIO(png)).convert("RGB")

    with impasto_daemon.client() as client:
        _, plain = run({})
        extra = {"color_correction": True, "color_reference": _data_url(reference)}
        done, fixed = run(extra)
        assert fixed.tobytes() == color_corrected(plain, reference).tobytes()
        assert done["request"]["color_reference"].startswith("upload:")
        for refused, field in (
            ({**TINY, "prompt": "x", "color_correction": True}, "color_correction"),
            ({**body, "color_reference": _data_url(reference)}, "color_reference"),
        ):
            answer = client.post("/api/v1/generate", json=refused)
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == field


def test_idempotency_key_returns_the_same_job(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        headers = {"Idempotency-Key": "retry-123"}
        first = client.post("/api/v1/generate", json={"prompt": "once", **TINY}, headers=headers)
        second = client.post("/api/v1/generate", json={"prompt": "once", **TINY}, headers=headers)
        assert first.status_code == 202 and second.status_code == 200
        assert first.json()["id"] == second.json()["id"]
        history = client.get("/api/v1/history", params={"q": "once"}).json()
        assert len(history["items"]) == 1
        # The key with another request: a 422 naming it (the IETF draft on the header), and
        # no second job; a retry with an inline picture stores it no second time.
        other = client.post("/api/v1/generate", json={"prompt": "twice", **TINY}, headers=headers)
        assert other.status_code == 422, other.text
        assert other.json()["errors"][0]["field"] == "Idempotency-Key"
        assert first.json()["id"] in other.json()["detail"]
        assert client.get("/api/v1/history", params={"q": "twice"}).json()["items"] == []
        picture = {
            **TINY,
            "prompt": "once more",
            "init_image": _data_url(Image.new("RGB", (64, 64))),
        }
        keyed = {"Idempotency-Key": "retry-456"}
        assert client.post("/api/v1/generate", json=picture, headers=keyed).status_code == 202
        uploads = set((impasto_daemon.data_dir / "uploads").glob("*"))
        again = client.post("/api/v1/generate", json=picture, headers=keyed)
        assert again.status_code == 200
        assert set((impasto_daemon.data_dir / "uploads").glob("*")) == uploads


def test_uploads_past_their_retention_are_swept_when_the_daemon_starts(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path, upload_retention_hours=1)
    uploads = daemon.data_dir / "uploads"
    uploads.mkdir(parents=True)
    old, recent = uploads / f"{'a' * 32}.png", uploads / f"{'b' * 32}.png"
    for path in (old, recent):
        Image.new("RGB", (8, 8)).save(path)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    daemon.start()
    deadline = time.monotonic() + 30
    while old.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not old.exists() and recent.exists()
    assert "removed 1 uploads older than 1 hours" in (daemon.log_dir / "daemon.log").read_text()
