"""Nothing blocks the event loop: a real daemon started under ``tests.loop_guard`` records every
image decode or encode, and every file opened or folder listed under the data folder, that runs
on the event loop's thread. Each route (every GET of the API document without path parameters,
and the POSTs that take images) must leave that record empty: such work belongs in a thread."""

from __future__ import annotations

import base64
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin

from tests.harness import TINY, Daemon, wait_status
from tests.sr_model import pattern, write_sr_model


class GuardedDaemon(Daemon):
    def __init__(self, root: Path) -> None:
        super().__init__(root, preview_every=1)
        self.command = [sys.executable, "-m", "tests.loop_guard", "serve"]
        self.record = root / "loop-guard.jsonl"

    def env(self) -> dict[str, str]:
        return {**super().env(), "IMPASTO_TEST_LOOP_GUARD": str(self.record)}

    def blocked(self) -> list[dict[str, Any]]:
        """What ran on the event loop since the last call."""
        if not self.record.exists():
            return []
        found = [json.loads(line) for line in self.record.read_text().splitlines() if line]
        self.record.write_text("")
        return found


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedDaemon]:
    root = tmp_path_factory.mktemp("loop-guard")
    write_sr_model(root / "data" / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    running = GuardedDaemon(root).start()
    running.wait_worker_ready()
    running.blocked()  # starting up may read files; serving may not
    yield running
    running.stop()


@pytest.fixture(scope="module")
def http(daemon: GuardedDaemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        client.timeout = httpx.Timeout(300)
        yield client


def png(image: Image.Image, text: str | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("parameters", text)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def b64(image: Image.Image, text: str | None = None) -> str:
    return base64.b64encode(png(image, text)).decode()


SOURCE = pattern(48, 40)
MASK = Image.new("L", (48, 40), 0)
MASK.paste(255, (8, 8, 40, 32))
HOLE = Image.new("RGBA", (64, 64), (200, 40, 40, 255))
HOLE.paste((0, 0, 0, 0), (16, 16, 48, 48))
A1111 = {"prompt": "a house", "steps": 2, "seed": 3, "width": 64, "height": 64}


def assert_not_blocked(daemon: GuardedDaemon, what: str) -> None:
    blocked = daemon.blocked()
    assert not blocked, f"{what} ran on the event loop:\n" + "\n".join(
        f"  {b['what']} <- {' <- '.join(reversed(b['stack']))}" for b in blocked
    )


def test_every_listing_reads_files_in_a_thread(daemon: GuardedDaemon, http: httpx.Client) -> None:
    document = http.get("/schema/openapi.json").json()
    paths = [
        path
        for path, item in document["paths"].items()
        if "get" in item and "{" not in path and "events" not in path
    ]
    assert "/sdapi/v1/sd-models" in paths and "/api/v1/models" in paths
    paths += ["/api/v1/models/sd-tiny", "/api/v1/models/sdxl-tiny"]  # one model, described
    failures = []
    for path in paths:
        http.get(path)
        blocked = daemon.blocked()
        if blocked:
            failures.append(f"GET {path}: {blocked[0]['what']} <- {blocked[0]['stack']}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sdapi/v1/txt2img", A1111),
        ("/sdapi/v1/img2img", {**A1111, "init_images": [b64(SOURCE)], "mask": b64(MASK)}),
        (
            "/sdapi/v1/img2img",
            {
                **A1111,
                "init_images": [b64(SOURCE)],
                "script_name": "SD upscale",
                "script_args": ["", 16, "Lanczos", 2],
            },
        ),
        (
            "/sdapi/v1/img2img",
            {
                **A1111,
                "init_images": [b64(SOURCE)],
                "script_name": "loopback",
                "script_args": [2, 0.5, "Linear", "None"],
            },
        ),
        (
            "/sdapi/v1/txt2img",
            {
                **A1111,
                "prompt": "a house|red",
                "script_name": "prompt matrix",
            },
        ),
        ("/sdapi/v1/extra-single-image", {"image": b64(SOURCE), "upscaler_1": "tiny-sr"}),
        (
            "/sdapi/v1/extra-batch-images",
            {"imageList": [{"data": b64(SOURCE), "name": "a"}], "upscaler_1": "Lanczos"},
        ),
        ("/sdapi/v1/png-info", {"image": b64(SOURCE, "a cat\nSteps: 2, Seed: 1")}),
        # A title, not an id: matching it lists the models folder.
        ("/sdapi/v1/options", {"sd_model_checkpoint": "SD-Tiny.safetensors [0a1b2c3d4e]"}),
        ("/sdapi/v1/refresh-checkpoints", {}),
        ("/sdapi/v1/refresh-loras", {}),
        ("/sdapi/v1/refresh-vae", {}),
        ("/sdapi/v1/refresh-embeddings", {}),
        ("/v1/images/generations", {"prompt": "a house", "size": "64x64", "steps": 2}),
        ("/api/v1/generate/plan", {**TINY, "prompt": "x", "init_image": b64(SOURCE)}),
        ("/api/v1/upscale", {"image": b64(SOURCE), "upscaler": "tiny-sr", "scale": 2}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_json_routes_decode_and_write_images_in_a_thread(
    daemon: GuardedDaemon, http: httpx.Client, path: str, body: dict[str, Any]
) -> None:
    response = http.post(path, json=body)
    assert response.status_code < 300, response.text
    assert_not_blocked(daemon, f"POST {path}")


def test_native_generate_with_images_and_uploads(daemon: GuardedDaemon, http: httpx.Client) -> None:
    upload = http.post("/api/v1/images/", files={"file": ("a.png", png(SOURCE), "image/png")})
    assert upload.status_code == 201, upload.text
    assert_not_blocked(daemon, "POST /api/v1/images/")
    response = http.post(
        "/api/v1/generate/",
        json={**TINY, "prompt": "x", "init_image": b64(SOURCE), "mask_image": b64(MASK)},
    )
    assert response.status_code == 202, response.text
    done = wait_status(http, response.json()["id"], {"completed", "failed"})
    assert done["status"] == "completed"
    url = done["results"][0]["url"]
    for path in (url, f"{url}?thumbnail=1", f"/api/v1/generate/{done['id']}"):
        assert http.get(path).status_code == 200
    assert http.delete(f"/api/v1/generate/{done['id']}").status_code == 204
    assert_not_blocked(daemon, "a native job with images")


@pytest.mark.parametrize("path", ["/v1/images/edits", "/v1/images/variations"])
def test_openai_image_uploads_decode_in_a_thread(
    daemon: GuardedDaemon, http: httpx.Client, path: str
) -> None:
    response = http.post(
        path,
        data={"prompt": "a house", "size": "64x64", "steps": "2"},
        files={"image": ("a.png", png(HOLE), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert_not_blocked(daemon, f"POST {path}")


def test_queue_and_plugin_switches(daemon: GuardedDaemon, http: httpx.Client) -> None:
    plugins = [plugin["name"] for plugin in http.get("/api/v1/plugins").json()]
    assert plugins
    for path in (
        "/api/v1/queue/pause",
        "/api/v1/queue/resume",
        f"/api/v1/plugins/{plugins[0]}/disable",
        f"/api/v1/plugins/{plugins[0]}/enable",
    ):
        assert http.post(path).status_code == 200, path
        assert_not_blocked(daemon, f"POST {path}")
