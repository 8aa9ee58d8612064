"""Every invalid field gets a 4xx naming it and the allowed values; nothing is queued."""

from __future__ import annotations

import base64
import io
import re
import shutil
from pathlib import Path

import pytest
from litestar.testing import TestClient
from PIL import Image

from impasto.api.app import build_litestar, create_app
from impasto.api.bodies import struct_body
from impasto.plugins.discovery import build_plugin_manager
from impasto.services import convert
from impasto.services.container import Services
from tests.api.conftest import make_services

TINY_LORA = (
    Path(__file__).resolve().parents[2] / "models/tiny/adapters/loras/tiny-kohya.safetensors"
)

VALID = {"prompt": "a cat", "width": 64, "height": 64, "steps": 2}

CASES = [
    ("prompt", "", "1 to 20000 characters"),
    ("prompt", " \t\n ", "not only spaces"),
    # Text only: a NUL byte cannot go into the PNG's text chunks (nor means anything as a word).
    ("prompt", "a red\x00 circle", "without control characters"),
    ("prompt", "bell\x07", "without control characters"),
    ("negative_prompt", "blurry\x00", "without control characters"),
    ("hires", {"scale": 2, "prompt": "x\x1b[31m"}, "without control characters"),
    ("prompt", "x" * 20001, "1 to 20000 characters"),
    ("prompt", 5, "1 to 20000 characters"),
    ("negative_prompt", "n" * 20001, "at most 20000"),
    ("width", 65, "multiple of 8 between 64 and 2048"),
    ("width", 56, "multiple of 8 between 64 and 2048"),
    ("width", 2056, "multiple of 8 between 64 and 2048"),
    ("height", 0, "multiple of 8 between 64 and 2048"),
    ("height", "tall", "multiple of 8 between 64 and 2048"),
    # A typed body holds to its JSON types: a number in a string is not a number.
    ("width", "128", "multiple of 8 between 64 and 2048"),
    ("steps", "20", "between 1 and 150"),
    ("steps", 20.5, "between 1 and 150"),
    ("cfg_scale", "7", "between 0 and 30"),
    ("seed", "42", "-1 (random) or an integer between 0 and 9223372036854775807"),
    ("hires", {"scale": "2"}, "between 1 and 4"),
    ("steps", 0, "between 1 and 150"),
    ("steps", 151, "between 1 and 150"),
    ("cfg_scale", -0.5, "between 0 and 30"),
    ("cfg_scale", 30.5, "between 0 and 30"),
    ("seed", -2, "-1 (random) or an integer between 0 and 9223372036854775807"),
    ("seed", 2**63, "-1 (random) or an integer between 0 and 9223372036854775807"),
    ("subseed", -5, "-1 (random) or an integer between 0 and 9223372036854775807"),
    ("subseed_strength", 1.5, "between 0 and 1"),
    ("eta", 1.5, "between 0 and 1"),
    ("rng", "gpu", "pcg64, cpu"),
    ("seed_resize_from_width", 100, "multiple of 8 between 0 and 2048"),
    ("batch_size", 0, "between 1 and 10"),
    ("batch_size", 11, "between 1 and 10"),
    ("priority", 101, "between -100 and 100"),
    ("strength", 1.5, "between 0 and 1"),
    ("schedule", "linear", "default, karras, exponential, uniform"),
    ("sampler", "k_lms_fast", "one of euler_a"),
    ("model", "no-such-model", "is not installed; installed: impasto-shapes, sd-tiny"),
    ("loras", [{"name": "detail", "weight": 3}], "between -2 and 2"),
    ("loras", [{"name": "missing-lora", "weight": 1}], "missing-lora"),
    ("init_image", "%%%not base64%%%", "base64"),
    ("init_image", "upload:0123456789abcdef0123456789abcdef", "POST /images"),
    ("init_image", "upload:../../etc/passwd", "no uploaded image"),
    ("mask_image", "aGVsbG8=", "readable PNG, JPEG or WebP"),
]


@pytest.mark.parametrize(
    ("field", "value", "expected"), CASES, ids=[f"{c[0]}={str(c[1])[:20]}" for c in CASES]
)
def test_invalid_field_is_named_with_allowed_values(
    api: TestClient, services: Services, field: str, value: object, expected: str
) -> None:
    response = api.post("/api/v1/generate", json={**VALID, field: value})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["status_code"] == 422
    named = [e for e in body["errors"] if e["field"].split(".")[0].split("[")[0] == field]
    assert named, body
    assert expected in named[0]["message"], body
    assert field in body["detail"]
    assert services.jobs.store.count_queued() == 0


def test_missing_prompt_is_required(api: TestClient) -> None:
    response = api.post("/api/v1/generate", json={"width": 64})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "prompt", "message": "is required"}]


def test_several_errors_are_reported_together(api: TestClient) -> None:
    response = api.post("/api/v1/generate", json={**VALID, "width": 65, "steps": 0})
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert "width" in fields or "steps" in fields


BODY_CASES = {"empty": b"", "array": b"[1]", "string": b'"a cat"', "null": b"null"}


@pytest.mark.parametrize("body", BODY_CASES.values(), ids=BODY_CASES.keys())
@pytest.mark.parametrize(
    "path", ["/api/v1/generate", "/sdapi/v1/txt2img", "/v1/images/generations"]
)
def test_a_missing_or_non_object_body_is_named_as_the_body_in_every_dialect(
    api: TestClient, services: Services, path: str, body: bytes
) -> None:
    response = api.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    text = response.text
    assert "body" in text and "'data'" not in text and '"data"' not in text, text
    if not body:
        assert "is required: send a JSON object" in text
    if path.startswith("/sdapi"):
        assert {"loc": ["body"]}.items() <= response.json()["detail"][0].items()
    elif path.startswith("/v1"):
        assert response.json()["error"]["param"] is None
    else:
        assert response.json()["errors"][0]["field"] == "body"
    assert services.jobs.store.count_queued() == 0


def test_a_missing_lora_is_named_by_its_index(api: TestClient, services: Services) -> None:
    folder = services.catalog.models_dir / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    # The plan checks that each is installed and that its header reads.
    shutil.copy(TINY_LORA, folder / "detail.safetensors")
    (folder / "empty.safetensors").write_bytes(b"")
    loras = [{"name": "detail", "weight": 1}, {"name": "missing-lora", "weight": 1}]
    response = api.post("/api/v1/generate", json={**VALID, "loras": loras})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "loras[1].name"
    loras = [{"name": "detail", "weight": 1}, {"name": "empty", "weight": 1}]
    response = api.post("/api/v1/generate", json={**VALID, "loras": loras})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "field": "loras[1].name",
        "message": "LoRA 'empty' cannot be read: empty.safetensors: too short to be a "
        ".safetensors file",
    }
    assert services.jobs.store.count_queued() == 0


def test_a_request_lists_at_most_64_loras(api: TestClient, services: Services) -> None:
    """The cap is read before the items: 200,000 misspelt items are one 422 on the length
    (each item's fields looked up, as before, held the event loop for seconds)."""
    for count, item in ((65, {"name": "a", "weight": 1}), (200_000, {"nme": "a"})):
        response = api.post("/api/v1/generate", json={**VALID, "loras": [item] * count})
        assert response.status_code == 422, response.text[:300]
        (error,) = response.json()["errors"]
        assert error["field"] == "loras" and "64" in error["message"], error
    wrong = api.post("/api/v1/generate", json={**VALID, "loras": [{"nme": "a"}] * 64})
    assert wrong.json()["errors"][0]["field"] == "loras[0].nme"  # within the cap: named
    assert services.jobs.store.count_queued() == 0


def test_lora_tags_in_the_prompt_are_loras_as_in_a1111(api: TestClient, services: Services) -> None:
    """A prompt pasted from AUTOMATIC1111 (or a PNG it made) keeps its LoRAs: the tags leave
    the prompt and join ``loras``, after the field's own; the PNG text writes them back."""
    folder = services.catalog.models_dir / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(TINY_LORA, folder / "detail.safetensors")
    shutil.copy(TINY_LORA, folder / "ink.safetensors")
    body = {
        **VALID,
        "prompt": "a fox <lora:detail:0.6>, snow  <LORA:ink> <lora:detail:0.3:1>",
        "loras": [{"name": "ink", "weight": -0.5}],
    }
    plan = api.post("/api/v1/generate/plan", json=body).json()
    assert plan["prompt"] == "a fox , snow"
    assert plan["loras"] == [
        {"name": "ink", "weight": -0.5, "unet_weight": None},
        {"name": "detail", "weight": 0.6, "unet_weight": None},
        {"name": "ink", "weight": 1.0, "unet_weight": None},
        {"name": "detail", "weight": 0.3, "unet_weight": 1.0},
    ]
    body["prompt"] = "a fox <lora:detail:0.6>, snow  <LORA:ink>"
    # A hires prompt copied from the prompt keeps its tags out of the text encoder; the pass
    # runs with the first pass's LoRAs, so a tag naming others is refused.
    hires = {"scale": 1.5, "prompt": "a fox in snow <lora:detail:0.6>"}
    plan = api.post("/api/v1/generate/plan", json={**body, "hires": hires}).json()
    assert plan["hires"]["prompt"] == "a fox in snow"
    hires["prompt"] = "a fox <lora:detail:0.9>"
    response = api.post("/api/v1/generate", json={**body, "hires": hires})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "hires.prompt"
    assert response.json()["errors"][0]["message"].startswith(
        "<lora:detail:0.9>: the hires pass runs with the first pass's LoRAs"
    )
    refused = {
        "a fox <lora:missing:0.5>": "<lora:missing:0.5>: LoRA 'missing' is not installed",
        "a fox <lora:detail:7>": "<lora:detail:7>: the weight must be a number between -2 and 2",
        "a fox <lora:detail:strong>": "<lora:detail:strong>: the weight must be a number",
    }
    for prompt, message in refused.items():
        response = api.post("/api/v1/generate", json={**VALID, "prompt": prompt})
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == "prompt" and error["message"].startswith(message), error
    assert services.jobs.store.count_queued() == 0


def test_a1111_prompt_editing_is_taken_where_a1111_takes_it(
    api: TestClient, services: Services
) -> None:
    """``[cat:dog:0.5]`` and ``[a|b]`` run (engine/prompt_schedule.py); the plan keeps the
    prompts as written, as the PNG's parameters do."""
    hires = {"scale": 1.5}
    cases = {
        "prompt": {"prompt": "a [cat:dog:0.5]"},
        "negative_prompt": {"negative_prompt": "[blurry|grainy]"},
        "hires.prompt": {"hires": {**hires, "prompt": "a [cat:1.5]"}},
        "hires.negative_prompt": {"hires": {**hires, "negative_prompt": "[ugly::3]"}},
    }
    for field, fields in cases.items():
        response = api.post("/api/v1/generate/plan", json={**VALID, **fields})
        assert response.status_code == 200, (field, response.text)
        plan = response.json()
        sent = fields.get("hires", fields)
        key = field.removeprefix("hires.")
        assert (plan["hires"] if "hires" in fields else plan)[key] == sent[key]


def test_seamless_tiling_is_planned_and_what_cannot_wrap_is_refused(
    api: TestClient, services: Services
) -> None:
    """Before anything is queued: the parts that cannot wrap, and sizes the model's UNet does
    not divide whole (sd-tiny halves its latents once: 16-pixel steps)."""
    plan = api.post("/api/v1/generate/plan", json={**VALID, "tiling": True})
    assert plan.status_code == 200 and plan.json()["tiling"] is True
    assert api.post("/api/v1/generate/plan", json=VALID).json()["tiling"] is False
    cases = {
        "cache_interval": {"cache_interval": 3},
        "width": {"width": 72},
        "hires.height": {"hires": {"width": 128, "height": 136}},
    }
    for field, fields in cases.items():
        response = api.post("/api/v1/generate", json={**VALID, "tiling": True, **fields})
        assert response.status_code == 422, (field, response.text)
        error = response.json()["errors"][0]
        assert error["field"] == field, error
        assert "tiling" in error["message"], error
    # One axis: only its side must divide whole; anything but true, false, "x", "y" is a 422.
    for axis, size, refused in (("x", {"height": 72}, {"width": 72}), ("y", {"width": 72}, {})):
        plan = api.post("/api/v1/generate/plan", json={**VALID, "tiling": axis, **size})
        assert plan.status_code == 200 and plan.json()["tiling"] == axis, plan.text
        if refused:
            response = api.post("/api/v1/generate", json={**VALID, "tiling": axis, **refused})
            assert response.json()["errors"][0]["field"] == "width", response.text
    response = api.post("/api/v1/generate", json={**VALID, "tiling": "z"})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error == {"field": "tiling", "message": "must be true, false or one of x, y"}
    assert services.jobs.store.count_queued() == 0


def test_composable_prompts_run_where_there_is_an_uncond_to_guide_from(
    api: TestClient, services: Services
) -> None:
    """``AND`` guides each part from the uncond; an LCM UNet embeds its guidance scale and
    has none, so there it is refused before anything is queued, on the field that has it."""
    composed = {**VALID, "prompt": "a cat :1.2 AND a dog :0.5"}
    assert api.post("/api/v1/generate/plan", json=composed).status_code == 200
    lcm = {**composed, "model": "sd-tiny-lcm"}
    for body, field in (
        (lcm, "prompt"),
        ({**lcm, "prompt": "a cat", "hires": {"scale": 1.5, "prompt": "a AND b"}}, "hires.prompt"),
    ):
        response = api.post("/api/v1/generate", json=body)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["field"] == field and "AND" in error["message"], error
    assert services.jobs.store.count_queued() == 0


def test_a_whole_float_is_an_integer(api: TestClient) -> None:
    """JSON Schema's ``integer`` includes ``128.0`` (what Python's json writes for a float)."""
    response = api.post("/api/v1/generate/plan", json={**VALID, "width": 128.0, "steps": 3.0})
    assert response.status_code == 200, response.text
    assert (response.json()["width"], response.json()["steps"]) == (128, 3)


def test_a_catalog_build_without_the_converter_says_how_to_get_it_once(
    api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The build's summary carried the hint and the problem again: "make convert" twice.
    monkeypatch.setattr(convert, "CONVERT_MODULES", ("impasto_no_such_module",))
    answer = api.post("/api/v1/models/install", json={"source": "sd-turbo", "variant": "portable"})
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "source"
    assert error["message"].startswith("sd-turbo: "), error
    assert "converted to ONNX here" in error["message"]
    assert error["message"].count(convert.converter_hint()) == 1, error["message"]


STRICT_ROUTES = [
    ("post", "/api/v1/models/install", {"source": "x", "convert": "true"}, "convert", 422),
    ("post", "/api/v1/models/install", {"source": "x", "force": 1}, "force", 422),
    ("patch", "/api/v1/generate/0123456789abcdef", {"priority": "5"}, "priority", 422),
    ("post", "/api/v1/upscale", {"image": "aGVsbG8=", "scale": "2"}, "scale", 422),
    ("post", "/v1/images/generations", {"prompt": "a cat", "n": "2"}, "n", 400),
    ("post", "/v1/images/generations", {"prompt": "a cat", "n": 11}, "n", 400),
    ("post", "/v1/images/generations", {"prompt": "a cat", "steps": 0}, "steps", 400),
    ("post", "/v1/images/generations", {"prompt": "a cat", "stream": "yes"}, "stream", 400),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "status"),
    STRICT_ROUTES,
    ids=[f"{r[1]}:{r[3]}" for r in STRICT_ROUTES],
)
def test_every_typed_body_is_held_to_its_json_types(
    api: TestClient,
    services: Services,
    method: str,
    path: str,
    body: dict[str, object],
    field: str,
    status: int,
) -> None:
    response = api.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    named = answer["error"]["param"] if "error" in answer else answer["errors"][0]["field"]
    assert named == field, answer
    # The field's rule in words ("must be true or false"), not the decoder's ("Expected `bool`").
    assert "must be" in response.text and "Expected `" not in response.text, answer
    assert services.jobs.store.count_queued() == 0


def test_a1111_routes_still_coerce_as_pydantic_does(tmp_path: Path) -> None:
    """AUTOMATIC1111's own server reads ``"2"`` as 2 (pydantic v1); its clients rely on it, so
    the typed-body rule leaves its routes to their lenient reading (docs/compat.md). With a
    queue that takes nothing, a body that passed validation is answered 429."""
    services = make_services(tmp_path, max_queue=0)
    body = {"prompt": "a cat", "steps": "2", "width": "64", "height": 64.0}
    with TestClient(app=create_app(services)) as client:
        assert client.post("/sdapi/v1/txt2img", json=body).status_code == 429
        refused = client.post("/sdapi/v1/txt2img", json={**body, "steps": "many"})
        assert refused.status_code == 422, refused.text
        # FastAPI's shape with pydantic v1's words, as A1111's own server answers.
        assert refused.json()["detail"] == [
            {
                "loc": ["body", "steps"],
                "msg": "value is not a valid integer",
                "type": "type_error.integer",
            }
        ]
    services.extra["db"].close()  # type: ignore[attr-defined]


def test_malformed_json_is_400(api: TestClient, services: Services) -> None:
    for content in (b"{not json", b'{"prompt": "a cat",', b'{"prompt": "a cat"} x'):
        response = api.post(
            "/api/v1/generate", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["detail"].startswith("the body is not valid JSON: ")
    assert services.jobs.store.count_queued() == 0


OUT_OF_RANGE = [
    ("/api/v1/generate", '{"prompt": "a cat", "cfg_scale": 1e400}', "cfg_scale", 422),
    ("/api/v1/generate", '{"prompt": "a cat", "steps": -1e999}', "steps", 422),
    (
        "/api/v1/generate",
        '{"prompt": "a", "loras": [{"name": "x", "weight": 1e309}]}',
        "loras",
        422,
    ),
    ("/api/v1/generate", '{"prompt": "a cat", "plugins": {"p": {"x": 1e400}}}', "plugins", 422),
    ("/v1/images/generations", '{"prompt": "a cat", "n": 1e400}', "n", 400),
]


@pytest.mark.parametrize(("path", "content", "field", "status"), OUT_OF_RANGE)
def test_a_number_past_a_floats_range_names_its_field(
    api: TestClient, services: Services, path: str, content: str, field: str, status: int
) -> None:
    """JSON allows ``1e400``; a decoder cannot hold it. The answer names the field (the
    decoder's own error only says ``at `$[...]```)."""
    headers = {"content-type": "application/json"}
    response = api.post(path, content=content.encode(), headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    named = answer["error"]["param"] if "error" in answer else answer["errors"][0]["field"]
    assert named.startswith(field), answer
    assert "[...]" not in response.text and "Number out of range" not in response.text
    assert services.jobs.store.count_queued() == 0


def test_mask_without_init_image(api: TestClient) -> None:
    buf = io.BytesIO()
    Image.new("L", (64, 64)).save(buf, format="PNG")
    response = api.post(
        "/api/v1/generate", json={**VALID, "mask_image": base64.b64encode(buf.getvalue()).decode()}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "mask_image"


def assert_refused(api: TestClient, body: object, field: str, words: str) -> None:
    """``POST /generate`` of ``body`` is a 422 whose first error names ``field`` and says
    ``words``."""
    refused = api.post("/api/v1/generate", json=body)
    assert refused.status_code == 422, (body, refused.text)
    error = refused.json()["errors"][0]
    assert error["field"] == field and words in error["message"], error


def red_png() -> str:
    """A 64x64 red PNG, base64 (an init image)."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_noise_multiplier_and_extra_noise_need_an_init_image_and_their_range(
    api: TestClient, services: Services
) -> None:
    image = red_png()
    planned = api.post(
        "/api/v1/generate/plan", json={**VALID, "init_image": image, "noise_multiplier": 0.5}
    )
    assert planned.status_code in (200, 201) and planned.json()["noise_multiplier"] == 0.5
    assert api.post("/api/v1/generate/plan", json=VALID).json()["noise_multiplier"] == 1.0
    for body, words in (
        ({**VALID, "noise_multiplier": 0.5}, "init_image"),
        ({**VALID, "init_image": image, "noise_multiplier": 1.6}, "1.5"),
    ):
        assert_refused(api, body, "noise_multiplier", words)
    assert services.jobs.store.count_queued() == 0
    # Extra noise: with an init image or a hires pass (A1111 adds it to both), 0..1.
    body = {**VALID, "init_image": image, "extra_noise": 0.3}
    assert api.post("/api/v1/generate/plan", json=body).json()["extra_noise"] == 0.3
    hires = {"width": 128, "height": 128}
    body = {**VALID, "extra_noise": 0.3, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).status_code in (200, 201)
    for body, words in (
        ({**VALID, "extra_noise": 0.3}, "init_image or a hires pass"),
        ({**VALID, "init_image": image, "extra_noise": 1.5}, "0 and 1"),
    ):
        assert_refused(api, body, "extra_noise", words)
    assert services.jobs.store.count_queued() == 0


def test_the_inpaint_mask_weight_is_for_inpainting_models_starting_from_a_picture(
    api: TestClient, services: Services
) -> None:
    inpaint, image = {**VALID, "model": "sd-tiny-inpaint"}, red_png()
    body = {**inpaint, "init_image": image, "inpaint_mask_weight": 0.4}
    assert api.post("/api/v1/generate/plan", json=body).json()["inpaint_mask_weight"] == 0.4
    hires = {**inpaint, "inpaint_mask_weight": 0.4, "hires": {"width": 128, "height": 128}}
    assert api.post("/api/v1/generate/plan", json=hires).status_code in (200, 201)
    # An inpainting model runs txt2img and img2img with no mask (it once needed one).
    assert api.post("/api/v1/generate/plan", json=inpaint).status_code in (200, 201)
    for body, words in (
        ({**VALID, "init_image": image, "inpaint_mask_weight": 0.4}, "inpainting models"),
        ({**inpaint, "inpaint_mask_weight": 0.4}, "init_image"),
        ({**inpaint, "init_image": image, "inpaint_mask_weight": 1.2}, "0 and 1"),
    ):
        assert_refused(api, body, "inpaint_mask_weight", words)
    assert services.jobs.store.count_queued() == 0


def test_sigma_churn_is_for_the_samplers_that_take_it_and_in_range(
    api: TestClient, services: Services
) -> None:
    churn = {"s_churn": 2.0, "s_tmin": 0.1, "s_tmax": 5.0, "s_noise": 1.003}
    planned = api.post("/api/v1/generate/plan", json={**VALID, "sampler": "heun", **churn})
    assert planned.status_code in (200, 201), planned.text
    assert {name: planned.json()[name] for name in churn} == churn
    # A hires pass whose sampler takes churn is enough.
    hires = {"width": 128, "height": 128, "sampler": "euler"}
    body = {**VALID, "sampler": "dpmpp_2m", "s_churn": 1.0, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).status_code in (200, 201)
    for body, field, words in (
        ({**VALID, "sampler": "dpmpp_2m", "s_churn": 1.0}, "s_churn", "euler, heun, dpm_2"),
        ({**VALID, "sampler": "euler_a", "s_noise": 0.9}, "s_noise", "no sigma churn"),
        ({**VALID, "sampler": "euler", "s_churn": 100.5}, "s_churn", "0 and 100"),
        ({**VALID, "sampler": "euler", "s_tmax": -1}, "s_tmax", "0 and 999"),
        ({**VALID, "sampler": "euler", "s_noise": 1.2}, "s_noise", "0 and 1.1"),
    ):
        assert_refused(api, body, field, words)
    assert services.jobs.store.count_queued() == 0


def test_schedule_bounds_are_for_the_schedules_that_take_them_and_fit_the_model(
    api: TestClient, services: Services
) -> None:
    bounds = {"sigma_min": 0.1, "sigma_max": 10.0, "rho": 5.0}
    planned = api.post("/api/v1/generate/plan", json={**VALID, "schedule": "karras", **bounds})
    assert planned.status_code in (200, 201), planned.text
    assert {name: planned.json()[name] for name in bounds} == bounds
    # A hires pass on a schedule with a range is enough; exponential has a range, no rho.
    hires = {"width": 128, "height": 128, "schedule": "exponential"}
    body = {**VALID, "sampler": "euler", "sigma_max": 8.0, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).status_code in (200, 201)
    for body, field, words in (
        ({**VALID, "sampler": "euler", "sigma_min": 0.1}, "sigma_min", "karras, exponential"),
        ({**VALID, "schedule": "exponential", "rho": 3}, "rho", "karras, polyexponential"),
        ({**VALID, "schedule": "uniform", "sigma_max": 3}, "sigma_max", "has no sigma_max"),
        ({**VALID, "schedule": "karras", "sigma_min": 0}, "sigma_min", "0.001 and 5000"),
        ({**VALID, "schedule": "karras", "rho": 101}, "rho", "0.01 and 100"),
        # Sigmas that would rise instead of fall, on sd-tiny's schedule (its top is 14.6).
        ({**VALID, "schedule": "karras", **bounds, "sigma_min": 12}, "sigma_min", "sigma_max 10"),
        ({**VALID, "schedule": "normal", "sigma_min": 20}, "sigma_min", "top sigma"),
        ({**VALID, "schedule": "kl_optimal", "sigma_max": 0.01}, "sigma_max", "lowest sigma"),
        (
            {**VALID, "sampler": "euler", "sigma_min": 40, "hires": hires},
            "sigma_min",
            "top sigma",
        ),
    ):
        assert_refused(api, body, field, words)
    assert services.jobs.store.count_queued() == 0


def test_skipping_the_negative_pass_needs_cfg_and_no_deepcache(
    api: TestClient, services: Services
) -> None:
    skip = {"s_min_uncond": 1.5, "s_min_uncond_all": True, "skip_early_cond": 0.25}
    planned = api.post("/api/v1/generate/plan", json={**VALID, "cfg_scale": 5, **skip})
    assert planned.status_code in (200, 201), planned.text
    assert {name: planned.json()[name] for name in skip} == skip
    # A hires pass with guidance is enough.
    hires = {"width": 128, "height": 128, "cfg_scale": 4}
    body = {**VALID, "cfg_scale": 1, "skip_early_cond": 0.2, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).status_code in (200, 201)
    for body, field, words in (
        ({**VALID, "cfg_scale": 1, "s_min_uncond": 2}, "s_min_uncond", "cfg_scale 1"),
        ({**VALID, "cfg_scale": 0, "skip_early_cond": 0.5}, "skip_early_cond", "above 1"),
        ({**VALID, "cfg_scale": 5, "s_min_uncond_all": True}, "s_min_uncond_all", "s_min_uncond"),
        ({**VALID, "s_min_uncond": 16}, "s_min_uncond", "0 and 15"),
        ({**VALID, "skip_early_cond": 1.5}, "skip_early_cond", "0 and 1"),
        ({**VALID, "s_min_uncond": 1, "cache_interval": 3}, "s_min_uncond", "DeepCache"),
    ):
        assert_refused(api, body, field, words)
    assert services.jobs.store.count_queued() == 0


def test_discarding_the_next_to_last_sigma_is_for_samplers_with_sigmas(
    api: TestClient, services: Services
) -> None:
    body = {**VALID, "sampler": "euler", "discard_penultimate_sigma": True}
    planned = api.post("/api/v1/generate/plan", json=body)
    assert planned.status_code in (200, 201), planned.text
    assert planned.json()["discard_penultimate_sigma"] is True
    hires = {"width": 128, "height": 128, "sampler": "dpmpp_2m"}
    body = {**VALID, "sampler": "ddim", "discard_penultimate_sigma": True, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).status_code in (200, 201)
    assert_refused(api, {**body, "hires": None}, "discard_penultimate_sigma", "walks timesteps")
    samplers = {s["id"]: s["discard_penultimate"] for s in api.get("/api/v1/samplers").json()}
    assert (samplers["dpm_2"], samplers["dpm_2_a"], samplers["euler"]) == (True, True, False)
    assert (samplers["ddim"], samplers["unipc"], samplers["lcm"]) == (None, None, None)
    assert services.jobs.store.count_queued() == 0


def test_the_sgm_noise_multiplier_is_for_a_txt2img_start_with_sigmas(
    api: TestClient, services: Services
) -> None:
    body = {**VALID, "sampler": "euler", "sgm_noise_multiplier": True}
    planned = api.post("/api/v1/generate/plan", json=body)
    assert planned.status_code in (200, 201), planned.text
    assert planned.json()["sgm_noise_multiplier"] is True
    cases = [
        ({"sampler": "ddim"}, "walks timesteps"),
        ({"init_image": red_png()}, "init_image"),
        ({"sgm_noise_multiplier": "yes"}, "true or false"),
    ]
    for change, message in cases:
        assert_refused(api, {**body, **change}, "sgm_noise_multiplier", message)
    assert services.jobs.store.count_queued() == 0


def test_unipc_order_and_variant_are_for_unipc(api: TestClient, services: Services) -> None:
    body = {**VALID, "sampler": "unipc", "unipc_order": 3, "unipc_variant": "bh1"}
    planned = api.post("/api/v1/generate/plan", json=body)
    assert planned.status_code in (200, 201), planned.text
    assert (planned.json()["unipc_order"], planned.json()["unipc_variant"]) == (3, "bh1")
    hires = {"width": 128, "height": 128, "sampler": "unipc"}  # the hires pass runs UniPC
    body_hires = {**body, "sampler": "euler", "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body_hires).status_code in (200, 201)
    cases = [
        ({"sampler": "euler"}, "unipc_order", "UniPC's"),
        ({"sampler": "euler", "unipc_order": None}, "unipc_variant", "UniPC's"),
        ({"unipc_order": 4}, "unipc_order", "between 1 and 3"),
        ({"unipc_order": 0}, "unipc_order", "between 1 and 3"),
        ({"unipc_variant": "vary_coeff"}, "unipc_variant", "bh1, bh2"),
    ]
    for change, field, message in cases:
        assert_refused(api, {**body, **change}, field, message)
    unipc = {s["id"]: s["unipc"] for s in api.get("/api/v1/samplers").json()}
    assert [name for name, takes in unipc.items() if takes] == ["unipc"]
    assert services.jobs.store.count_queued() == 0


def test_img2img_steps_are_for_runs_from_an_image(api: TestClient, services: Services) -> None:
    image = red_png()
    body = {**VALID, "init_image": image, "strength": 0.5, "img2img_steps": "exact"}
    planned = api.post("/api/v1/generate/plan", json=body)
    assert planned.status_code in (200, 201), planned.text
    assert planned.json()["img2img_steps"] == "exact"
    hires = {**VALID, "hires": {"width": 128, "height": 128}, "img2img_steps": "a1111"}
    assert api.post("/api/v1/generate/plan", json=hires).status_code in (200, 201)
    cases = [
        ({**VALID, "img2img_steps": "exact"}, "img2img_steps", "init_image or of a hires pass"),
        ({**body, "img2img_steps": "comfy"}, "img2img_steps", "strength, a1111, exact"),
        # exact steps at 20 / 0.01 would lay out 2000 steps, more than the model has
        ({**body, "steps": 20, "strength": 0.01}, "strength", "at most 1000"),
        (
            {
                **hires,
                "img2img_steps": "exact",
                "hires": {"width": 128, "strength": 0.01, "steps": 20},
            },
            "hires.strength",
            "at most 1000",
        ),
    ]
    for sent, field, message in cases:
        assert_refused(api, sent, field, message)
    assert services.jobs.store.count_queued() == 0


def test_unsupported_schedule_for_sampler(api: TestClient) -> None:
    response = api.post("/api/v1/generate", json={**VALID, "sampler": "ddim", "schedule": "karras"})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (
        error["field"] == "schedule" and "ddim supports the schedules: default" in error["message"]
    )


HIRES_CASES = [
    ({"scale": 5}, "hires.scale", "between 1 and 4"),
    ({"upscaler": "esrgan"}, "hires.upscaler", "latent"),
    ({"strength": 2}, "hires.strength", "between 0 and 1"),
    ({"width": 2400}, "hires.width", "2048"),
    ({"sampler": "nope"}, "hires.sampler", "unknown sampler"),
    ({"schedule": "Karras"}, "hires.schedule", "karras"),  # ids only, as the first pass's
    ({"sampler": "ddim", "schedule": "karras"}, "hires.schedule", "ddim supports"),
]


@pytest.mark.parametrize(("hires", "field", "expected"), HIRES_CASES)
def test_bad_hires_fields_are_named(
    api: TestClient, services: Services, hires: dict[str, object], field: str, expected: str
) -> None:
    response = api.post("/api/v1/generate", json={**VALID, "hires": hires})
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    named = [e for e in errors if e["field"] == field]
    assert named and expected in named[0]["message"], errors
    assert services.jobs.store.count_queued() == 0


def test_a_random_variation_seed_is_drawn_into_the_plan(api: TestClient) -> None:
    plans = [
        api.post("/api/v1/generate/plan", json={**VALID, **fields}).json()
        for fields in ({"subseed_strength": 0.4}, {"subseed": 12, "subseed_strength": 0.4}, {})
    ]
    drawn, given, none = ((p["subseed"], p["subseed_strength"]) for p in plans)
    assert 0 <= drawn[0] <= 2**32 - 1 and drawn[1] == 0.4
    assert given == (12, 0.4) and none == (-1, 0.0)


def test_eta_goes_to_samplers_that_add_noise_and_is_refused_by_the_others(
    api: TestClient, services: Services
) -> None:
    planned = api.post("/api/v1/generate/plan", json={**VALID, "sampler": "ddim", "eta": 0.3})
    assert planned.status_code in (200, 201), planned.text
    assert planned.json()["eta"] == 0.3
    unset = api.post("/api/v1/generate/plan", json={**VALID, "sampler": "euler_a"}).json()
    assert unset["eta"] is None  # each sampler's own: 1 for Euler a
    assert_refused(api, {**VALID, "sampler": "euler", "eta": 0.3}, "eta", "euler_a")
    # A hires pass whose sampler adds noise takes it.
    hires = {"sampler": "euler_a", "scale": 1.5}
    body = {**VALID, "sampler": "euler", "eta": 0.3, "hires": hires}
    assert api.post("/api/v1/generate/plan", json=body).json()["eta"] == 0.3
    assert services.jobs.store.count_queued() == 0
    samplers = {s["id"]: s["eta"] for s in api.get("/api/v1/samplers").json()}
    assert (samplers["euler_a"], samplers["ddim"], samplers["euler"]) == (1.0, 0.0, None)


def test_a_resized_seed_needs_both_sides(api: TestClient, services: Services) -> None:
    sides = {"seed_resize_from_width": 64, "seed_resize_from_height": 96}
    planned = api.post("/api/v1/generate/plan", json={**VALID, **sides}).json()
    assert (planned["seed_resize_from_width"], planned["seed_resize_from_height"]) == (64, 96)
    refused = api.post("/api/v1/generate", json={**VALID, "seed_resize_from_width": 64})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "seed_resize_from_height"
    assert services.jobs.store.count_queued() == 0


def test_hires_is_resolved_into_the_plan(api: TestClient) -> None:
    body = {**VALID, "hires": {"scale": 1.5, "sampler": "DPM++ 2M", "steps": 3}}
    response = api.post("/api/v1/generate/plan", json=body)
    assert response.status_code in (200, 201), response.text
    hires = response.json()["hires"]
    assert (hires["width"], hires["height"], hires["sampler"]) == (96, 96, "dpmpp_2m")
    assert (hires["upscaler"], hires["strength"], hires["steps"]) == ("latent", 0.7, 3)
    # The schedule: the first pass's where the hires sampler has it, else default; or its own.
    assert hires["schedule"] == response.json()["schedule"]
    for sampler, schedule, expected in (
        ("ddim", None, "default"),
        ("euler", "exponential", "exponential"),
        (None, "karras", "karras"),
    ):
        hires_body = {"sampler": sampler, "schedule": schedule}
        planned = api.post("/api/v1/generate/plan", json={**VALID, "hires": hires_body})
        assert planned.status_code in (200, 201), planned.text
        assert planned.json()["hires"]["schedule"] == expected
    image = "data:image/png;base64,iVBORw0KGgo="
    refused = api.post("/api/v1/generate", json={**body, "init_image": image})
    assert refused.status_code == 422


def test_a1111_combined_sampler_names_carry_their_schedule(
    api: TestClient, services: Services
) -> None:
    """A pre-1.9 A1111 name ("DPM++ 2M Karras") means the sampler and its schedule, on the
    native API as on /sdapi; an explicit ``schedule`` wins; a combined name whose sampler lacks
    the schedule is refused naming ``sampler``."""
    cases = (
        ({"sampler": "DPM++ 2M Karras"}, ("dpmpp_2m", "karras")),
        ({"sampler": "dpm++ 2m karras", "schedule": "exponential"}, ("dpmpp_2m", "exponential")),
        ({"sampler": "Euler a Exponential"}, ("euler_a", "exponential")),
        ({"sampler": "k_dpm_2_ka"}, ("dpm_2", "karras")),
        ({"sampler": "Euler a"}, ("euler_a", "default")),
    )
    for fields, expected in cases:
        planned = api.post("/api/v1/generate/plan", json={**VALID, **fields})
        assert planned.status_code in (200, 201), planned.text
        assert (planned.json()["sampler"], planned.json()["schedule"]) == expected, fields
    hires = {"scale": 1.5, "sampler": "DPM++ SDE Karras", "steps": 3}
    planned = api.post("/api/v1/generate/plan", json={**VALID, "hires": hires})
    assert planned.status_code in (200, 201), planned.text
    assert (planned.json()["hires"]["sampler"], planned.json()["hires"]["schedule"]) == (
        "dpmpp_sde",
        "karras",
    )
    for body, field in (
        ({**VALID, "sampler": "DDIM Karras"}, "sampler"),
        ({**VALID, "hires": {**hires, "sampler": "DDIM Karras"}}, "hires.sampler"),
        ({**VALID, "sampler": "Karras"}, "sampler"),
    ):
        refused = api.post("/api/v1/generate", json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == field
    assert services.jobs.store.count_queued() == 0


def test_the_openai_bodies_are_documented_as_they_are_read(api: TestClient) -> None:
    """The document says what the routes refuse: an empty prompt, an edit without its image
    (schema-driven clients and fuzzers build their requests from it)."""
    paths = api.get("/schema/openapi.json").json()["paths"]
    body = paths["/v1/images/generations"]["post"]["requestBody"]["content"]
    prompt = body["application/json"]["schema"]
    assert "$ref" in prompt  # the request schema, whose prompt holds the native prompt's rule
    schemas = api.get("/schema/openapi.json").json()["components"]["schemas"]
    assert schemas["ImageGenerationRequest"]["properties"]["prompt"]["minLength"] == 1
    for route, required in (("edits", {"image", "prompt"}), ("variations", {"image"})):
        form = paths[f"/v1/images/{route}"]["post"]["requestBody"]["content"]
        schema = form["multipart/form-data"]["schema"]
        assert set(schema["required"]) == required, route
        assert schema["properties"]["image"] == {"type": "string", "format": "binary"}
        assert schema["properties"]["n"]["type"] == "integer"  # a form field is never null
        assert schema["properties"]["n"]["maximum"] == 10


def test_a_prompt_of_only_spaces_is_refused_like_an_empty_one_by_openai(
    api: TestClient, services: Services
) -> None:
    """The OpenAI route refuses an empty prompt, so it refuses one of spaces the same way."""
    for prompt in ("", " \t\n"):
        response = api.post("/v1/images/generations", json={"prompt": prompt})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == "prompt"
    assert services.jobs.store.count_queued() == 0


@pytest.mark.parametrize(
    ("path", "body", "field", "allowed"),
    [
        # Bodies outside the generate request, whose rules are read from the route's own type.
        (
            "/api/v1/models/install",
            {"source": "a/b", "precision": "int4"},
            "precision",
            "must be one of fp32, fp16, int8",
        ),
        (  # the native request has a resize_mode too, with other values
            "/sdapi/v1/extra-single-image",
            {"image": "aGk=", "resize_mode": 7},
            "resize_mode",
            "must be one of 0, 1",
        ),
        ("/api/v1/generate", {**VALID, "decoder": "turbo"}, "decoder", "must be one of full, fast"),
    ],
)
def test_a_value_outside_a_closed_set_is_answered_with_the_set(
    api: TestClient, path: str, body: dict[str, object], field: str, allowed: str
) -> None:
    response = api.post(path, json=body)
    assert response.status_code == 422, response.text
    assert field in response.text and allowed in response.text, response.text
    assert "Invalid enum value" not in response.text


def test_rules_are_found_through_nesting_options_and_lists() -> None:
    from impasto.wire.limits import schema_rule
    from impasto.wire.requests import GenerateRequest

    assert schema_rule(GenerateRequest, "rng") == "must be one of pcg64, cpu, nv"
    assert schema_rule(GenerateRequest | None, "inpaint_area") == "must be one of whole, masked"
    assert str(schema_rule(GenerateRequest, "prompt")).startswith("must be text of 1 to")
    assert schema_rule(GenerateRequest, "steps") == "must be an integer between 1 and 150"
    assert schema_rule(GenerateRequest, "no_such_field") is None


def test_every_native_body_refuses_a_field_its_schema_lacks(
    api: TestClient, services: Services
) -> None:
    """A misspelt field would otherwise be ignored without a word: every typed body of
    Impasto's own API answers 422 naming it, whatever else the body holds."""
    routes: list[tuple[str, str]] = []
    for route in build_litestar(services).routes:
        for handler in getattr(route, "route_handlers", []):
            if route.path.startswith("/api/") and struct_body(handler) is not None:
                path = re.sub(r"\{(\w+):\w+\}", "x", route.path)
                routes += [(method, path) for method in handler.http_methods]
    assert {("POST", "/api/v1/generate"), ("PATCH", "/api/v1/generate/x")} <= set(routes)
    assert {("POST", "/api/v1/models/install"), ("POST", "/api/v1/upscale")} <= set(routes)
    for method, path in routes:
        answer = api.request(method, path, json={"zzz_not_a_field": 1})
        assert answer.status_code == 422, (method, path, answer.text)
        [error] = answer.json()["errors"]
        assert error["field"] == "zzz_not_a_field", (method, path)
        assert error["message"].startswith("is not a field of this request; its fields are ")
    # A small body lists its fields; a large one says where they are.
    answer = api.patch("/api/v1/generate/x", json={"prio": 1}).json()["errors"]
    assert answer == [
        {"field": "prio", "message": "is not a field of this request; did you mean priority?"}
    ]
    answer = api.patch("/api/v1/generate/x", json={"rank": 1}).json()["errors"]
    assert answer == [
        {"field": "rank", "message": "is not a field of this request; its fields are priority"}
    ]
    answer = api.post("/api/v1/generate", json={"zzz": 1}).json()["errors"]
    assert answer[0]["message"].endswith("its fields are listed in the API document (/schema)")
    assert services.jobs.store.count_queued() == 0


@pytest.mark.parametrize(
    ("extra", "field", "meant"),
    [
        ({"stepz": 4}, "stepz", "steps"),
        ({"negative": "blurry"}, "negative", "negative_prompt"),
        ({"loras": [{"name": "x", "weigth": 1}]}, "loras[0].weigth", "weight"),
        ({"hires": {"scale": 2, "upscalr": "lanczos"}}, "hires.upscalr", "upscaler"),
    ],
)
def test_a_misspelt_field_is_named_with_the_field_meant(
    api: TestClient, services: Services, extra: dict[str, object], field: str, meant: str
) -> None:
    answer = api.post("/api/v1/generate", json={"prompt": "a cat", **extra})
    assert answer.status_code == 422, answer.text
    message = f"is not a field of this request; did you mean {meant}?"
    assert answer.json()["errors"] == [{"field": field, "message": message}]
    assert services.jobs.store.count_queued() == 0


def test_free_form_options_and_the_compatible_apis_take_any_field(tmp_path: Path) -> None:
    """``plugins`` is a map of each plugin's own options, not fields; A1111 and OpenAI clients
    send fields Impasto does not know (AUTOMATIC1111 ignores them; tools send OpenAI-compatible
    servers their own extras). With a queue
    that takes nothing, a body that passed validation is answered 429."""
    services = make_services(tmp_path, max_queue=0)
    # The built-in plugins (these tests' services run none): options go to a running plugin.
    services.jobs.plugins = build_plugin_manager(data_dir=tmp_path, entry_points=False)
    with TestClient(app=create_app(services)) as client:
        native = {"prompt": "a cat", "plugins": {"png_metadata": {"any option": [{"x": 1}]}}}
        assert client.post("/api/v1/generate", json=native).status_code == 429
        a1111 = {"prompt": "a cat", "steps": 2, "not_an_a1111_field": 1}
        assert client.post("/sdapi/v1/txt2img", json=a1111).status_code == 429
        openai_body = {"prompt": "a cat", "not_an_openai_field": 1}
        assert client.post("/v1/images/generations", json=openai_body).status_code == 429
        document = client.get("/schema/openapi.json").json()["components"]["schemas"]
    assert document["GenerateRequest"]["additionalProperties"] is False
    assert document["LoraSpec"]["additionalProperties"] is False
    assert "additionalProperties" not in document["ImageGenerationRequest"]
    services.extra["db"].close()  # type: ignore[attr-defined]


def test_plugin_options_in_a_daemon_without_plugins_are_refused(
    api: TestClient, services: Services
) -> None:
    services.jobs.plugins = None  # a daemon started with plugins off
    body = {**VALID, "plugins": {"styles": {"styles": ["x"]}}}
    response = api.post("/api/v1/generate", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0] == {
        "field": "plugins",
        "message": "plugins are not loaded in this daemon",
    }
    assert api.post("/api/v1/generate", json=VALID).status_code == 202
