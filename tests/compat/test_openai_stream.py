"""gpt-image-1's streaming (``stream: true``) driven by the real ``openai`` client."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from tests.documented import answer_schema, event_data_schema, schema_errors
from tests.harness import Daemon, statuses_of_prompt

PROMPT = "a lighthouse at dusk"


@pytest.fixture
def client(impasto_daemon: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{impasto_daemon.url}/v1", api_key="unused", max_retries=0)


def _pixels(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _previews_by_step(daemon: Daemon, ready: threading.Event, out: dict[int, bytes]) -> None:
    """Read the daemon's live events until a job completes: each progress preview by step."""
    with daemon.client() as http, http.stream("GET", "/api/v1/events") as response:
        ready.set()
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind == "progress":
                data = json.loads(line.removeprefix("data: "))["data"]
                if "preview" in data:
                    out[data["step"]] = base64.b64decode(data["preview"].partition(",")[2])
            elif line.startswith("data: ") and kind == "completed":
                return


def test_a_streamed_generation_sends_partial_images_then_the_image(
    client: openai.OpenAI, impasto_daemon: Daemon
) -> None:
    previews: dict[int, bytes] = {}
    ready = threading.Event()
    listener = threading.Thread(target=_previews_by_step, args=(impasto_daemon, ready, previews))
    listener.start()
    assert ready.wait(10)
    events = list(
        client.images.generate(
            prompt=PROMPT,
            model="gpt-image-1",
            size="64x64",
            stream=True,
            partial_images=2,
            extra_body={"seed": 5, "steps": 20},
        )
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [getattr(e, "partial_image_index", None) for e in events] == [0, 1, None]
    assert {(e.size, e.output_format) for e in events} == {("64x64", "png")}
    partials = [_pixels(e.b64_json) for e in events[:2]]
    final = _pixels(events[2].b64_json)
    assert {p.shape for p in partials} == {final.shape}
    # The previews of steps 7 and 14 of 20 (one third and two), at the image's size.
    listener.join(30)
    assert {7, 14} <= set(previews)  # the daemon's preview_every is 1
    for partial, step in zip(partials, (7, 14), strict=True):
        with Image.open(io.BytesIO(previews[step])) as preview:
            expected = np.asarray(preview.resize((64, 64), Image.Resampling.BILINEAR))
        assert np.array_equal(partial, expected)
    assert not any(np.array_equal(p, final) for p in partials)
    # The finished image is the one the same request gives without streaming.
    plain = client.images.generate(
        prompt=PROMPT,
        size="64x64",
        response_format="b64_json",
        extra_body={"seed": 5, "steps": 20},
    )
    assert plain.data[0].b64_json is not None
    assert np.array_equal(final, _pixels(plain.data[0].b64_json))


def test_a_streamed_edit_sends_image_edit_events_for_each_image(client: openai.OpenAI) -> None:
    source = _png(Image.new("RGBA", (64, 64), (255, 255, 255, 0)))
    events = list(
        client.images.edit(
            image=("a.png", source, "image/png"),
            prompt=PROMPT,
            n=2,
            stream=True,
            partial_images=1,
            output_format="jpeg",
            extra_body={"steps": 4},
        )
    )
    assert [e.type for e in events] == [
        "image_edit.partial_image",
        "image_edit.completed",
        "image_edit.completed",
    ]
    for event in events:
        assert base64.b64decode(event.b64_json)[:2] == b"\xff\xd8"  # the asked-for format
    assert len({e.b64_json for e in events[1:]}) == 2


def test_no_partial_images_streams_only_the_image(client: openai.OpenAI) -> None:
    events = list(client.images.generate(prompt=PROMPT, stream=True, extra_body={"steps": 4}))
    assert [e.type for e in events] == ["image_generation.completed"]


def test_a_waiting_stream_keeps_alive_and_a_cancelled_job_ends_it_with_an_error(
    impasto_daemon: Daemon,
) -> None:
    """While the job waits (the queue is paused) the stream sends comments, which SSE clients
    do not see as events; cancelling the job ends the stream with an ``error`` event."""
    lines: list[str] = []
    body = {"prompt": PROMPT, "stream": True, "partial_images": 3, "steps": 4}
    with impasto_daemon.client() as http:
        assert http.post("/api/v1/queue/pause").status_code == 200
        try:

            def read() -> None:
                with http.stream("POST", "/v1/images/generations", json=body) as response:
                    assert response.status_code == 200
                    assert response.headers["content-type"].startswith("text/event-stream")
                    lines.extend(response.iter_lines())

            reader = threading.Thread(target=read)
            reader.start()
            time.sleep(2.8)  # past one heartbeat (2 s)
            queued = http.get("/api/v1/queue").json()
            job_id = next(j["id"] for j in queued["items"] if j["status"] == "queued")
            assert http.post(f"/api/v1/generate/{job_id}/cancel").status_code == 200
            reader.join(30)
        finally:
            http.post("/api/v1/queue/resume")
    assert ": keep-alive" in lines
    # A comment has no data line: an empty data line would be an event an SSE client parses.
    data = [line.removeprefix("data: ") for line in lines if line.startswith("data:")]
    assert [line for line in lines if line.startswith("event:")] == ["event: error"]
    assert len(data) == 1
    error: dict[str, Any] = json.loads(data[0])["error"]
    assert error["type"] == "server_error" and "cancelled" in error["message"]
    with impasto_daemon.client() as http:
        document = http.get("/schema/openapi.json").json()
    schema = event_data_schema(document, "/v1/images/generations", "post")
    assert schema_errors(schema, json.loads(data[0])) == []


def test_the_sdk_raises_the_error_event(client: openai.OpenAI, impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as http:
        http.post("/api/v1/queue/pause")
        try:
            stream = client.images.generate(prompt=PROMPT, stream=True, extra_body={"steps": 4})
            job = http.get("/api/v1/queue").json()["items"][0]
            http.post(f"/api/v1/generate/{job['id']}/cancel")
            with pytest.raises(openai.APIError, match="cancelled"):
                list(stream)
        finally:
            http.post("/api/v1/queue/resume")


@pytest.mark.parametrize(
    ("route", "fields", "param"),
    [
        ("variations", {"stream": "true"}, "stream"),
        ("edits", {"stream": "true", "response_format": "url"}, "response_format"),
        ("edits", {"stream": "true", "partial_images": "4"}, "partial_images"),
    ],
)
def test_what_cannot_stream_is_refused_before_anything_is_queued(
    impasto_daemon: Daemon, route: str, fields: dict[str, str], param: str
) -> None:
    image = _png(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    with impasto_daemon.client() as http:
        before = http.get("/api/v1/history", params={"limit": 1}).json()["items"]
        response = http.post(
            f"/v1/images/{route}",
            files={"image": ("a.png", image, "image/png")},
            data={"prompt": "x", **fields},
        )
        after = http.get("/api/v1/history", params={"limit": 1}).json()["items"]
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert before == after


def test_every_event_is_what_the_document_says(impasto_daemon: Daemon) -> None:
    """The document's ``text/event-stream`` answer: each event's name from its set, and its
    data, read as JSON, valid against its closed schema (an undeclared field fails)."""
    route = "/v1/images/generations"
    body = {"prompt": PROMPT, "stream": True, "partial_images": 3, "steps": 8, "size": "64x64"}
    with impasto_daemon.client() as http:
        document = http.get("/schema/openapi.json").json()
        with http.stream("POST", route, json=body) as response:
            lines = list(response.iter_lines())
    fields = document["components"]["schemas"]["ImageGenerationRequest"]["properties"]
    assert (fields["partial_images"]["minimum"], fields["partial_images"]["maximum"]) == (0, 3)
    names = answer_schema(document, route, "post", media_type="text/event-stream")
    data_schema = event_data_schema(document, route, "post")
    events = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    assert events == ["image_generation.partial_image"] * 3 + ["image_generation.completed"]
    assert set(events) <= set(names["properties"]["event"]["enum"])
    for item in data:
        assert schema_errors(data_schema, item) == []
    assert [item["type"] for item in data] == events


def test_a_stream_closed_before_its_image_cancels_the_job(impasto_daemon: Daemon) -> None:
    """A chat front end's stop button closes the stream: the job is cancelled, not left to run
    for nobody."""
    prompt = "a stream nobody reads to its end"
    body = {"prompt": prompt, "stream": True, "size": "64x64", "steps": 4}
    with impasto_daemon.client() as http:
        assert http.post("/api/v1/queue/pause").status_code == 200
        try:
            with (
                impasto_daemon.client() as reader,
                reader.stream("POST", "/v1/images/generations", json=body) as response,
            ):
                assert response.status_code == 200
            statuses = statuses_of_prompt(
                http, prompt, ["cancelled"], 15
            )  # the next keep-alive (2 s) finds it closed
        finally:
            http.post("/api/v1/queue/resume")
    assert statuses == ["cancelled"]
