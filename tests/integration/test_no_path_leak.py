"""No local path reaches what a user sees or shares: job records, events, responses, PNG chunks.

Generate with a LoRA, an embedding, a VAE swap and an init image (SD 1.x), with a refiner
(SDXL), and through the A1111 and OpenAI routes; then search every byte that came back for the
data, models and temp folders (and the test's root folder that holds them). The listings too:
every GET route of the API document without path parameters (A1111's sd-models, sd-vae, loras,
embeddings, upscalers, cmd-flags, ...), with LoRAs, VAEs, embeddings and an upscaler installed.
"""

from __future__ import annotations

import base64
import io
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.harness import TINY, Daemon, wait_status
from tests.sr_model import write_sr_model

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("leak")
    models = root / "models"
    shutil.copytree(ADAPTERS, models)
    write_sr_model(models / "upscalers" / "tiny-sr.onnx")
    d = Daemon(root, models_dir=str(models), temp_dir=str(root / "tmp")).start()
    d.wait_worker_ready()
    yield d
    d.stop()


def _png_text(png: bytes) -> bytes:
    """Every text chunk of a PNG, inflated where compressed, so a zlib'd path is found too."""
    out, offset = [], 8
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        kind, data = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        if kind == b"zTXt":
            out.append(zlib.decompress(data.split(b"\0", 1)[1][1:]))
        elif kind == b"iTXt":
            _, rest = data.split(b"\0", 1)
            compressed, body = rest[0], rest[2:].split(b"\0", 2)[2]
            out.append(zlib.decompress(body) if compressed else body)
        offset += 12 + length
    return b"\n".join(out)


def _events(client: httpx.Client) -> bytes:
    """The whole event log as the SSE stream replays it."""
    received = []
    with client.stream("GET", "/api/v1/events", params={"since": 0}, timeout=5.0) as stream:
        try:
            for chunk in stream.iter_bytes():
                received.append(chunk)
        except httpx.ReadTimeout:
            pass  # the replay is done once the stream only keeps the connection alive
    return b"".join(received)


def _upload(client: httpx.Client) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 30, 200)).save(buf, format="PNG")
    response = client.post("/api/v1/images", files={"file": ("i.png", buf.getvalue())})
    assert response.status_code == 201, response.text
    return f"upload:{response.json()['id']}"


def _assert_no_folder_in(daemon: Daemon, everything: bytes) -> None:
    folders = {
        daemon.root,
        daemon.data_dir,
        Path(daemon.settings["models_dir"]),
        daemon.root / "tmp",
    }
    for folder in folders:
        for spelling in {str(folder), str(folder.resolve()), str(folder).replace("/", "\\/")}:
            assert spelling.encode() not in everything, f"{spelling} leaked"


def test_no_listing_holds_a_local_path(daemon: Daemon) -> None:
    with daemon.client() as client:
        document = client.get("/schema/openapi.json").json()
        paths = [
            path
            for path, item in document["paths"].items()
            if "get" in item and "{" not in path and not path.endswith("/events")
        ]
        assert {"/sdapi/v1/sd-vae", "/sdapi/v1/loras", "/sdapi/v1/cmd-flags"} <= set(paths)
        answers = {path: client.get(path) for path in paths}
    for path, response in answers.items():
        assert response.status_code == 200, (path, response.text)
    listed = b"\n".join(response.content for response in answers.values())
    # The listings do list what is installed (by name, relative to the models folder).
    for name in (b"loras/tiny-peft.safetensors", b"vae/sd-tiny-vae-alt", b"tiny-a1111", b"tiny-sr"):
        assert name in listed, name
    _assert_no_folder_in(daemon, listed)


def test_no_response_record_event_or_png_holds_a_local_path(daemon: Daemon) -> None:
    seen: list[bytes] = []
    with daemon.client() as client:
        requests = [
            {
                "prompt": "a house in tiny-a1111 style",
                "model": "sd-tiny",
                "loras": [{"name": "tiny-peft", "weight": 0.8}],
                "vae": "sd-tiny-vae-alt",
                "init_image": _upload(client),
                "strength": 0.6,
                **TINY,
            },
            {
                "prompt": "a refined house",
                "model": "sdxl-tiny",
                "refiner": "sdxl-tiny-refiner",
                "refiner_switch": 0.5,
                **TINY,
            },
        ]
        for request in requests:
            response = client.post("/api/v1/generate", json=request)
            assert response.status_code == 202, response.text
            seen.append(response.content)
            job = wait_status(client, response.json()["id"], {"completed", "failed"})
            assert job["status"] == "completed", job
            plan = job["plan"]
            assert plan["loras"] or plan["refiner"]
            for result in job["results"]:
                png = client.get(result["url"]).content
                seen += [png, _png_text(png)]
                info = client.post(
                    "/sdapi/v1/png-info", json={"image": base64.b64encode(png).decode()}
                )
                seen.append(info.content)
        first = client.get("/api/v1/history").json()["items"][-1]
        assert first["plan"]["embeddings"] == ["tiny-a1111"]
        assert first["plan"]["vae"] == "sd-tiny-vae-alt"
        a1111 = client.post(
            "/sdapi/v1/txt2img",
            json={"prompt": "<lora:tiny-kohya:0.5> a1111 house", "width": 64, "height": 64},
        )
        openai = client.post(
            "/v1/images/generations",
            json={"prompt": "<lora:tiny-peft> openai house", "size": "64x64", "n": 1},
        )
        assert a1111.status_code == 200 and openai.status_code == 200, (a1111.text, openai.text)
        seen += [a1111.content, openai.content]
        for image in a1111.json()["images"]:
            seen.append(_png_text(base64.b64decode(image)))
        for path in ("/api/v1/history", "/api/v1/queue", "/sdapi/v1/progress"):
            seen.append(client.get(path).content)
        for item in client.get("/api/v1/history").json()["items"]:
            seen.append(client.get(f"/api/v1/generate/{item['id']}").content)
        seen.append(_events(client))
    everything = b"\n".join(seen)
    assert b"tiny-peft" in everything and b"sdxl-tiny-refiner" in everything
    _assert_no_folder_in(daemon, everything)


def test_broken_adapters_are_named_by_file_not_folder(daemon: Daemon) -> None:
    """A request naming a broken LoRA or VAE is refused saying which file, never where it
    lies; an embedding that cannot be read is skipped (as A1111 does) rather than failing
    every prompt using its word, and A1111's listing puts it under ``skipped``."""
    models = Path(daemon.settings["models_dir"])
    (models / "loras" / "broken-lora.safetensors").write_bytes(b"\xff" * 64)
    (models / "embeddings" / "brokenword.safetensors").write_bytes(b"\x10" + bytes(7) + b"{")
    (models / "vae" / "empty-vae").mkdir()
    with daemon.client() as client:
        refused = [
            client.post("/api/v1/generate", json={"prompt": "x", **TINY, **extra})
            for extra in (
                {"loras": [{"name": "broken-lora", "weight": 1}]},
                {"vae": "empty-vae"},
            )
        ]
        job = client.post("/api/v1/generate", json={"prompt": "a brokenword house", **TINY})
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
        listing = client.get("/sdapi/v1/embeddings")
        events = _events(client)
    # Refused before a job is queued, naming the field and the file, not its folder.
    assert [answer.status_code for answer in refused] == [422, 422]
    lora, vae = (answer.json()["errors"][0] for answer in refused)
    assert lora["field"] == "loras[0].name" and "broken-lora.safetensors" in lora["message"]
    assert vae["field"] == "vae" and "no vae_decoder/model.onnx" in vae["message"]
    assert done["status"] == "completed", done["error"]
    assert "brokenword" not in done["plan"]["embeddings"]
    assert listing.status_code == 200 and "brokenword" in listing.json()["skipped"]
    _assert_no_folder_in(daemon, b"\n".join([*(a.content for a in refused), events]))
