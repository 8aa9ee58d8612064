"""Every endpoint of /api/v1, in-process, with each state it can answer from."""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from typing import Any

import numpy as np
from litestar.testing import TestClient
from PIL import Image

from impasto.services.container import Services

TINY = {"width": 64, "height": 64, "steps": 2}


def png_bytes(size: tuple[int, int] = (64, 64), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format="PNG")
    return buf.getvalue()


def submit(api: TestClient, **fields: object) -> dict:
    response = api.post("/api/v1/generate", json={"prompt": "a cat", **TINY, **fields})
    assert response.status_code == 202, response.text
    return response.json()


def test_submit_fills_defaults_and_reports_position(api: TestClient) -> None:
    first = submit(api)
    second = submit(api)
    assert first["status"] == "queued" and first["position"] == 0
    assert second["position"] == 1
    status = api.get(f"/api/v1/generate/{first['id']}").json()
    request = status["request"]
    assert request["model"] == "sd-tiny" and request["sampler"] == "euler_a"
    assert request["cfg_scale"] == 7.0 and request["seed"] == -1 and request["batch_size"] == 1
    assert status["status"] == "queued" and status["results"] == [] and status["progress"] == 0.0
    assert status["total_steps"] == 2 and status["created_at"].endswith("Z")


def test_unknown_job_is_404(api: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/generate/nope"),
        ("POST", "/api/v1/generate/nope/cancel"),
        ("DELETE", "/api/v1/generate/nope"),
        ("GET", "/api/v1/images/nope/0"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (method, path)
        assert "nope" in response.json()["detail"]
    assert api.patch("/api/v1/generate/nope", json={"priority": 1}).status_code == 404


def test_cancel_queued_then_conflicts(api: TestClient) -> None:
    job = submit(api)
    cancelled = api.post(f"/api/v1/generate/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/generate/{job['id']}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_priority_reorders_and_only_while_queued(api: TestClient) -> None:
    a, b = submit(api), submit(api)
    moved = api.patch(f"/api/v1/generate/{b['id']}", json={"priority": 10})
    assert moved.status_code == 200 and moved.json()["position"] == 0
    queue = api.get("/api/v1/queue").json()
    assert [j["id"] for j in queue["items"]] == [b["id"], a["id"]] and queue["paused"] is False
    api.post(f"/api/v1/generate/{a['id']}/cancel")
    assert api.patch(f"/api/v1/generate/{a['id']}", json={"priority": 1}).status_code == 409
    bad = api.patch(f"/api/v1/generate/{b['id']}", json={"priority": 101})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "priority"


def test_delete_needs_a_finished_job(api: TestClient) -> None:
    job = submit(api)
    refused = api.delete(f"/api/v1/generate/{job['id']}")
    assert refused.status_code == 409 and "cancel it" in refused.json()["detail"]
    api.post(f"/api/v1/generate/{job['id']}/cancel")
    assert api.delete(f"/api/v1/generate/{job['id']}").status_code == 204
    assert api.get(f"/api/v1/generate/{job['id']}").status_code == 404


def test_pause_and_resume(api: TestClient) -> None:
    assert api.post("/api/v1/queue/pause").json() == {"paused": True}
    assert api.get("/api/v1/queue").json()["paused"] is True
    assert api.post("/api/v1/queue/resume").json() == {"paused": False}


def test_history_pages_with_cursor_and_filters(api: TestClient) -> None:
    ids = [submit(api, prompt=f"prompt number {i}")["id"] for i in range(5)]
    page = api.get("/api/v1/history", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]
    seen = [j["id"] for j in page["items"]]
    while page["next_cursor"]:
        page = api.get("/api/v1/history", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        seen += [j["id"] for j in page["items"]]
    assert seen == ids[::-1]
    found = api.get("/api/v1/history", params={"q": "NUMBER 3"}).json()["items"]
    assert [j["id"] for j in found] == [ids[3]]
    api.post(f"/api/v1/generate/{ids[0]}/cancel")
    cancelled = api.get("/api/v1/history", params={"status": "cancelled"}).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    bad = api.get("/api/v1/history", params={"status": "done"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    bad_cursor = api.get("/api/v1/history", params={"cursor": "garbage!"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["errors"][0]["field"] == "cursor"
    assert api.get("/api/v1/history", params={"limit": 0}).status_code in (400, 422)
    # An empty parameter is none: a client filling a URL template from nothing gets page one.
    empty = api.get("/api/v1/history", params={"limit": 2, "cursor": "", "model": "", "status": ""})
    assert [j["id"] for j in empty.json()["items"]] == ids[::-1][:2], empty.text


def test_comma_list_parameters_document_what_they_take(api: TestClient) -> None:
    """The document's pattern takes exactly the lists the route takes (schema-driven clients
    and fuzzers build their values from it), each value comma-separated and the parameter
    repeated (an array, exploded: ``status=a&status=b``)."""
    paths = api.get("/schema/openapi.json").json()["paths"]
    cases = [
        ("/api/v1/history", "status", "cancelled,queued", "done"),
        ("/api/v1/models", "type", "lora,vae", "loras"),
    ]
    for path, name, good, bad in cases:
        (param,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == name]
        array, _ = param["schema"]["oneOf"]
        assert array["type"] == "array" and param.get("explode", True)
        pattern = re.compile(array["items"]["pattern"])
        assert pattern.search(good) and pattern.search("") and not pattern.search(bad), pattern
        assert api.get(path, params={name: good}).status_code == 200
        assert api.get(path, params=[(name, good), (name, good)]).status_code == 200
        assert api.get(path, params={name: bad}).status_code == 422


def test_upload_then_use_as_init_image(api: TestClient, services: Services) -> None:
    uploaded = api.post(
        "/api/v1/images", files={"file": ("a.png", png_bytes((80, 40)), "image/png")}
    )
    assert uploaded.status_code == 201
    body = uploaded.json()
    assert (body["width"], body["height"], body["mode"]) == (80, 40, "RGB")
    job = submit(api, init_image=f"upload:{body['id']}", strength=0.4)
    plan = api.get(f"/api/v1/generate/{job['id']}").json()["plan"]
    # Resized to the requested size into a new upload, so the worker gets what it expects.
    resized = services.uploads.path_of(plan["init_image"].removeprefix("upload:"))
    assert Image.open(resized).size == (64, 64)


def huge_png_header(side: int = 60000) -> bytes:
    """A small PNG whose header claims side x side pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def test_upload_rejects_non_images_and_oversize(tmp_path) -> None:
    from impasto.api.app import create_app
    from tests.api.conftest import make_services

    services = make_services(tmp_path, max_upload_size=2000)
    with TestClient(app=create_app(services)) as api:
        text = api.post("/api/v1/images", files={"file": ("a.png", b"not an image", "image/png")})
        assert text.status_code == 422 and text.json()["errors"][0]["field"] == "file"
        big = api.post(
            "/api/v1/images",
            files={"file": ("b.png", png_bytes((400, 400), "RGB") + b"\0" * 3000, "image/png")},
        )
        assert big.status_code == 422 and "limit" in big.json()["detail"]
        gif = io.BytesIO()
        Image.new("RGB", (8, 8)).save(gif, format="GIF")
        refused = api.post("/api/v1/images", files={"file": ("c.gif", gif.getvalue(), "image/gif")})
        assert refused.status_code == 422 and "GIF" in refused.json()["detail"]
        # A header claiming 60000x60000 pixels: Pillow refuses it before decoding anything.
        bomb = api.post("/api/v1/images", files={"file": ("d.png", huge_png_header(), "image/png")})
        assert bomb.status_code == 422 and "at most 4096x4096" in bomb.json()["detail"], bomb.text
        missing = api.post("/api/v1/images", files={"other": ("c.png", png_bytes(), "image/png")})
        assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "file"
        # The document names the field the route reads (it said an array named "files").
        document = api.get("/schema/openapi.json").json()
        form = document["paths"]["/api/v1/images"]["post"]["requestBody"]["content"]
        ref = form["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
        schema = document["components"]["schemas"][ref]
        assert schema["required"] == ["file"] and schema["properties"]["file"]["format"] == "binary"
        # An output is a PNG, its thumbnail a JPEG: both documented (it said application/json).
        image = document["paths"]["/api/v1/images/{job_id}/{index}"]["get"]["responses"]["200"]
        assert set(image["content"]) == {"image/png", "image/jpeg"}
    services.extra["db"].close()


def test_base64_and_data_url_images(api: TestClient) -> None:
    raw = base64.b64encode(png_bytes()).decode()
    assert submit(api, init_image=raw)["status"] == "queued"
    assert (
        submit(api, init_image=f"data:image/png;base64,{raw}", mask_image=raw)["status"] == "queued"
    )


def test_models_samplers_system_health(api: TestClient) -> None:
    models = {m["id"]: m for m in api.get("/api/v1/models").json()}
    assert {"sd-tiny", "sd-tiny-inpaint", "sd-tiny-v"} <= set(models)
    assert models["sd-tiny"]["read_only"] is True and models["sd-tiny-inpaint"]["inpaint"] is True
    assert models["sd-tiny-v"]["prediction_type"] == "v_prediction"
    samplers = {s["id"]: s for s in api.get("/api/v1/samplers").json()}
    assert {
        "euler_a",
        "euler",
        "heun",
        "lms",
        "ddim",
        "pndm",
        "dpmpp_2m",
        "dpmpp_2m_sde",
        "unipc",
        "lcm",
    } <= set(samplers)
    assert (
        samplers["euler_a"]["name"] == "Euler a" and "karras" in samplers["dpmpp_2m"]["schedules"]
    )
    assert samplers["ddim"]["schedules"] == ["default"]
    # The settings each sampler is meant to run with (A1111's per-sampler scheduler, EDM's Heun).
    assert samplers["heun"]["recommended_steps"] == 10
    assert samplers["heun"]["recommended_schedule"] == "karras"
    assert samplers["dpmpp_2m_sde"]["recommended_schedule"] == "exponential"
    assert samplers["euler_a"]["recommended_schedule"] == "default"
    for sampler in samplers.values():
        assert sampler["recommended_schedule"] in sampler["schedules"], sampler
    system = api.get("/api/v1/system").json()
    assert system["version"] and system["queue"] == {"queued": 0, "processing": 0, "paused": False}
    assert system["memory"]["total"] > 0 and isinstance(system["gpus"], list)
    assert api.get("/api/v1/health").json()["status"] == "ok"


def test_openapi_and_offline_docs(api: TestClient) -> None:
    schema = api.get("/schema/openapi.json").json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/generate" in schema["paths"] and "/api/v1/events" in schema["paths"]
    request = schema["components"]["schemas"]["GenerateRequest"]["properties"]
    assert request["width"]["minimum"] == 64 and request["width"]["maximum"] == 2048
    page = api.get("/schema")
    assert page.status_code == 200
    # Every script and stylesheet comes from the daemon itself: the page works offline.
    assert "cdn" not in page.text.lower() and "unpkg" not in page.text.lower()
    assert "/schema-assets/swagger-ui-bundle.js" in page.text
    bundle = api.get("/schema-assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000


def test_links_lead_from_a_submitted_job_to_what_can_be_done_with_it(api: TestClient) -> None:
    """The document's links point at real operations and name a parameter the answer holds:
    following them from a submit gets the job (what a stateful tester or a client does)."""
    document = api.get("/schema/openapi.json").json()
    submit = document["paths"]["/api/v1/generate"]["post"]["responses"]["202"]
    links = submit["links"]
    assert {"JobStatus", "Cancel", "Remove", "Reprioritise"} <= set(links)
    for link in links.values():
        # "#/paths/~1api~1v1~1generate~1{job_id}/get" -> the operation it names
        *parts, method = link["operationRef"].removeprefix("#/paths/").split("/")
        path = "/".join(parts).replace("~1", "/").replace("~0", "~")
        assert method in document["paths"][path], link
        assert link["parameters"] == {"job_id": "$response.body#/id"}
    job = api.post("/api/v1/generate", json={"prompt": "a cat"}).json()
    assert api.get(f"/api/v1/generate/{job['id']}").json()["status"] == "queued"
    models = document["paths"]["/api/v1/models"]["get"]["responses"]["200"]["links"]
    assert models["Model"]["parameters"] == {"model_id": "$response.body#/0/id"}


def test_ui_is_served_at_root(api: TestClient) -> None:
    page = api.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_queue_full_answers_429_with_retry_after(tmp_path) -> None:
    from impasto.api.app import create_app
    from tests.api.conftest import make_services

    services = make_services(tmp_path, max_queue=2)
    with TestClient(app=create_app(services)) as api:
        submit(api)
        submit(api)
        picture = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
        third = {"prompt": "third", **TINY, "init_image": picture}
        full = api.post("/api/v1/generate", json=third)
        assert full.status_code == 429 and int(full.headers["retry-after"]) > 0
        assert "limit" in full.json()["detail"]
        assert services.jobs.store.count_queued() == 2  # nothing half-created
        assert list(services.uploads.folder.glob("*")) == []  # nor its picture stored
        assert api.get("/api/v1/health").status_code == 200
    services.extra["db"].close()


def test_rate_limit_on_generate(tmp_path) -> None:
    from impasto.api.app import create_app
    from tests.api.conftest import make_services

    services = make_services(tmp_path, rate_limit=3)
    with TestClient(app=create_app(services)) as api:
        codes = [
            api.post("/api/v1/generate", json={"prompt": "x", **TINY}).status_code for _ in range(5)
        ]
        assert codes[:3] == [202, 202, 202] and codes[3] == 429
        assert api.get("/api/v1/queue").status_code == 200  # reads are not limited
    services.extra["db"].close()


def test_body_size_limit(tmp_path) -> None:
    from impasto.api.app import create_app
    from tests.api.conftest import make_services

    services = make_services(tmp_path, max_body_size=4096)
    with TestClient(app=create_app(services)) as api:
        huge = api.post("/api/v1/generate", json={"prompt": "x", "init_image": "A" * 10_000})
        assert huge.status_code == 413
        assert services.jobs.store.count_queued() == 0
    services.extra["db"].close()


def test_dismissing_an_unknown_install_is_404(api: TestClient) -> None:
    response = api.delete("/api/v1/models/installs/nope")
    assert response.status_code == 404 and "nope" in response.json()["detail"]


def test_inpaint_options_reach_the_plan_and_are_checked(api: TestClient) -> None:
    image = base64.b64encode(png_bytes((160, 96))).decode()
    mask = base64.b64encode(png_bytes((160, 96), "L")).decode()
    body = {"prompt": "a cat", **TINY, "init_image": image, "mask_image": mask}
    options = {"inpaint_area": "masked", "inpaint_padding": 12, "masked_content": "fill"}
    plan = api.post("/api/v1/generate/plan", json={**body, **options})
    assert plan.status_code == 200, plan.text
    assert {key: plan.json()[key] for key in options} == options
    defaults = api.post("/api/v1/generate/plan", json=body).json()
    assert (defaults["inpaint_area"], defaults["inpaint_padding"]) == ("whole", 32)
    assert defaults["masked_content"] == "original"
    for bad, field, words in (
        ({"inpaint_area": "everywhere"}, "inpaint_area", "whole, masked"),
        ({"inpaint_padding": 257}, "inpaint_padding", "between 0 and 256"),
        ({"masked_content": "sand"}, "masked_content", "latent_nothing"),
    ):
        refused = api.post("/api/v1/generate", json={**body, **bad})
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert error["field"] == field and words in error["message"], error
    no_mask = {"prompt": "a cat", **TINY, "init_image": image, "inpaint_area": "masked"}
    refused = api.post("/api/v1/generate", json=no_mask)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "inpaint_area"


def _open(schema: dict[str, Any]) -> bool:
    """A schema that says nothing of what is inside: any value, or an object of anything."""
    if schema.get("type") == "array":
        return _open(schema.get("items", {}))
    return not schema or (
        schema.get("type") == "object"
        and schema.keys() <= {"type", "additionalProperties"}
        and not schema.get("additionalProperties")
    )


def test_every_native_json_answer_has_a_schema(api: TestClient) -> None:
    """Generated clients and schema-driven testers read the answers' types from the document:
    no native route answers a bare object (GET /system and the install routes once did)."""
    document = api.get("/schema/openapi.json").json()
    bare = []
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("2") and schema is not None and _open(schema):
                    bare.append(f"{method.upper()} {path} {status}")
    assert bare == []
    system = document["components"]["schemas"]["SystemInfo"]["properties"]
    assert {"version", "provider", "queue", "workers", "loaded_models", "uptime"} <= set(system)
    events = document["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    job = document["components"]["schemas"]["GenerationStatus"]["properties"]["status"]
    assert set(job["enum"]) == {"queued", "processing", "completed", "failed", "cancelled"}
    model = document["components"]["schemas"]["ModelDetail"]["properties"]["type"]
    assert set(model["enum"]) == {"checkpoint", "lora", "embedding", "vae"}
    install = document["components"]["schemas"]["InstallInfo"]["properties"]["status"]
    assert set(install["enum"]) == {"queued", "running", "completed", "failed", "cancelled"}


def test_clear_cancels_every_queued_job_in_run_order_and_keeps_the_running_one(
    api: TestClient, services: Services
) -> None:
    running = submit(api, prompt="running")
    assert services.jobs.store.claim_next("w0").id == running["id"]  # as a worker would
    low, high, middle = submit(api), submit(api, priority=9), submit(api, priority=5)
    seq = services.extra["db"].execute("SELECT MAX(seq) FROM events")[0][0]

    cleared = api.post("/api/v1/queue/clear")
    assert cleared.status_code == 200, cleared.text
    assert cleared.json() == {"cancelled": [high["id"], middle["id"], low["id"]]}
    assert [j["id"] for j in api.get("/api/v1/queue").json()["items"]] == [running["id"]]
    for job in (low, high, middle):
        assert api.get(f"/api/v1/generate/{job['id']}").json()["status"] == "cancelled"
    # Each one's cancelled event, as a single cancel publishes: what clients waiting on a job see.
    events = services.extra["db"].execute(
        "SELECT type, job_id FROM events WHERE seq > ? ORDER BY seq", (seq,)
    )
    assert [tuple(e) for e in events] == [("cancelled", job["id"]) for job in (high, middle, low)]
    assert api.post("/api/v1/queue/clear").json() == {"cancelled": []}

    everything = api.post("/api/v1/queue/clear", params={"running": "true"})
    assert everything.json() == {"cancelled": [running["id"]]}
    assert api.get(f"/api/v1/generate/{running['id']}").json()["status"] == "cancelled"
    assert api.get("/api/v1/queue").json()["items"] == []
    bad = api.post("/api/v1/queue/clear", params={"running": "maybe"})
    assert bad.status_code == 422, bad.text
    assert bad.json()["errors"] == [{"field": "running", "message": "must be true or false"}]


def test_cmyk_and_16_bit_pictures_are_read_as_8_bit(api: TestClient, services: Services) -> None:
    """A CMYK JPEG is read as RGB (it was a 500: PNG cannot store CMYK), a 16-bit grey PNG as
    8-bit grey scaled down (Pillow clips it at 255: a dark 16-bit mask read as white)."""
    cmyk = io.BytesIO()
    Image.new("CMYK", (64, 64), (0, 255, 0, 0)).save(cmyk, format="JPEG")
    uploaded = api.post("/api/v1/images", files={"file": ("c.jpg", cmyk.getvalue(), "image/jpeg")})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["mode"] == "RGB"
    deep = io.BytesIO()
    Image.fromarray(np.full((64, 64), 1000, np.uint16)).save(deep, format="PNG")
    assert Image.open(io.BytesIO(deep.getvalue())).mode == "I;16"
    job = submit(
        api,
        init_image=base64.b64encode(cmyk.getvalue()).decode(),
        mask_image=base64.b64encode(deep.getvalue()).decode(),
    )
    plan = api.get(f"/api/v1/generate/{job['id']}").json()["plan"]
    stored = services.uploads.path_of(plan["mask_image"].removeprefix("upload:"))
    with Image.open(stored) as mask:
        assert mask.mode == "L" and set(mask.getdata()) == {round(1000 / 257)}
    init = services.uploads.path_of(plan["init_image"].removeprefix("upload:"))
    with Image.open(init) as image:
        red, green, blue = image.convert("RGB").getpixel((32, 32))
        assert red > 200 and green < 60 and blue > 200  # CMYK (0, 255, 0, 0) is magenta


def test_a_photo_is_read_the_way_up_its_exif_orientation_says(api: TestClient) -> None:
    """A phone stores a portrait photo sideways with an EXIF orientation; read upright."""
    stored = Image.new("RGB", (64, 32), "red")
    stored.paste((0, 0, 255), (0, 0, 8, 32))  # a blue strip on the stored left
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise: the strip on top
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", exif=exif.tobytes())
    uploaded = api.post("/api/v1/images", files={"file": ("p.jpg", buf.getvalue(), "image/jpeg")})
    assert uploaded.status_code == 201, uploaded.text
    assert (uploaded.json()["width"], uploaded.json()["height"]) == (32, 64)
