"""The OpenAI images API driven by the real ``openai`` client against a real daemon."""

from __future__ import annotations

import base64
import io
import threading
import time
from typing import Any, get_args, get_type_hints

import httpx
import numpy as np
import openai
import pytest
from openai.types import image_generate_params
from PIL import Image

from impasto.formats.png import parse_a1111_parameters
from tests.harness import Daemon, statuses_of_prompt

FAST = {"steps": 4}


@pytest.fixture
def client(impasto_daemon: Daemon) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{impasto_daemon.url}/v1", api_key="unused", max_retries=0)


def _decode(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def _embedded(image: Image.Image) -> dict[str, Any]:
    return parse_a1111_parameters(image.info["parameters"])


def _colours(image: Image.Image) -> set[Any]:
    return {colour for _, colour in image.getcolors(maxcolors=1 << 16) or []}


def test_generations_n2_b64_json_round_trips_size_prompt_and_seeds(client: openai.OpenAI) -> None:
    response = client.images.generate(
        model="dall-e-3",
        prompt="an orange kite",
        n=2,
        size="64x96",
        response_format="b64_json",
        quality="hd",
        style="vivid",
        user="someone",
        extra_body={"seed": 500, "negative_prompt": "rain", **FAST},
    )
    assert len(response.data) == 2
    images = [_decode(item.b64_json) for item in response.data]
    assert [image.size for image in images] == [(64, 96), (64, 96)]
    params = [_embedded(image) for image in images]
    assert [p["seed"] for p in params] == [500, 501]
    assert {p["prompt"] for p in params} == {"an orange kite"}
    assert {p["negative_prompt"] for p in params} == {"rain"}
    assert {(p["width"], p["height"], p["steps"]) for p in params} == {(64, 96, 4)}
    assert {p["model"] for p in params} == {"sd-tiny"}  # OpenAI's names mean the current model
    # OpenAI's document lists three sizes for the answer's size (an enum in generated
    # clients, which refuse another value): any other size is left out.
    assert response.size is None and "size" not in response.model_dump(exclude_unset=True)
    assert images[0].tobytes() != images[1].tobytes()


def test_generations_url_serves_the_png(client: openai.OpenAI, impasto_daemon: Daemon) -> None:
    response = client.images.generate(
        model="sd-tiny-v",
        prompt="a paper boat",
        n=2,
        size="64x64",
        response_format="url",
        extra_body={"seed": 12, **FAST},
    )
    assert len(response.data) == 2
    for index, item in enumerate(response.data):
        assert item.url is not None and item.url.startswith(impasto_daemon.url)
        fetched = httpx.get(item.url)
        assert fetched.status_code == 200
        image = Image.open(io.BytesIO(fetched.content))
        assert image.size == (64, 64)
        assert _embedded(image)["seed"] == 12 + index
        assert _embedded(image)["model"] == "sd-tiny-v"


def http_document(daemon: Daemon) -> dict[str, Any]:
    with daemon.client() as http:
        document: dict[str, Any] = http.get("/schema/openapi.json").json()
    return document


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def test_edits_repaint_the_transparent_part_of_the_mask(client: openai.OpenAI) -> None:
    source = Image.new("RGB", (64, 64), (20, 60, 220))
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (32, 0, 64, 64))  # transparent right half = edit it
    response = client.images.edit(
        image=("source.png", _png(source), "image/png"),
        mask=("mask.png", _png(mask), "image/png"),
        prompt="a window",
        n=2,
        size="64x64",
        response_format="b64_json",
        extra_body={"seed": 8, **FAST},
    )
    assert len(response.data) == 2
    for index, item in enumerate(response.data):
        image = _decode(item.b64_json)
        assert image.size == (64, 64)
        rgb = image.convert("RGB")
        assert _colours(rgb.crop((0, 0, 30, 64))) == {(20, 60, 220)}
        assert len(_colours(rgb.crop((34, 0, 64, 64)))) > 1
        params = _embedded(image)
        assert (params["seed"], params["prompt"]) == (8 + index, "a window")
        assert params["extra"]["Denoising strength"] == "1"


def test_edits_use_the_image_alpha_when_there_is_no_mask(client: openai.OpenAI) -> None:
    source = Image.new("RGBA", (128, 64), (220, 200, 20, 255))
    source.paste((0, 0, 0, 0), (0, 0, 64, 64))  # transparent left half = edit it
    response = client.images.edit(
        image=("source.png", _png(source), "image/png"),
        prompt="a cloud",
        response_format="b64_json",
        extra_body={"seed": 2, **FAST},
    )
    image = _decode(response.data[0].b64_json).convert("RGB")
    assert image.size == (128, 64)  # no size: the image's own
    assert _colours(image.crop((68, 0, 128, 64))) == {(220, 200, 20)}
    assert len(_colours(image.crop((0, 0, 60, 64)))) > 1


@pytest.mark.parametrize(("output_format", "magic"), [("jpeg", b"\xff\xd8"), ("webp", b"RIFF")])
def test_gpt_image_output_formats_are_encoded_as_asked(
    client: openai.OpenAI, output_format: str, magic: bytes
) -> None:
    png = client.images.generate(prompt="a teal boat", extra_body={"seed": 8, **FAST})
    reference = _decode(png.data[0].b64_json).convert("RGB")
    sizes = []
    for compression in (100, 20):
        response = client.images.generate(
            model="gpt-image-1",
            prompt="a teal boat",
            output_format=output_format,  # type: ignore[arg-type]
            output_compression=compression,
            extra_body={"seed": 8, **FAST},
        )
        assert response.output_format == output_format
        data = base64.b64decode(response.data[0].b64_json or "")
        assert data.startswith(magic)
        sizes.append(len(data))
        # The same picture as the PNG, encoded at that quality (Pillow, as the daemon uses).
        expected = io.BytesIO()
        reference.save(expected, output_format.upper(), quality=compression)
        decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        assert np.array_equal(decoded, np.asarray(Image.open(expected).convert("RGB")))
    assert sizes[1] < sizes[0]  # output_compression reaches the encoder


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"size": "huge"}, "size"),
        ({"size": "65x64"}, "size"),
        ({"size": "64x4096"}, "size"),
        ({"n": 11}, "n"),
        ({"response_format": "jpeg"}, "response_format"),
        ({"output_format": "gif"}, "output_format"),
        ({"output_format": "webp", "output_compression": 101}, "output_compression"),
        ({"output_format": "jpeg", "response_format": "url"}, "output_format"),
        ({"extra_body": {"sampler": "DEIS"}}, "sampler"),
        ({"background": "transparent"}, "background"),  # the pictures are opaque
        ({"quality": "ultra"}, "quality"),
        ({"style": "pastel"}, "style"),
    ],
)
def test_invalid_requests_get_openai_error_bodies(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="x", **kwargs)
    error = info.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]


def test_missing_prompt_names_the_field(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as http:
        response = http.post("/v1/images/generations", json={"n": 1})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    assert response.json()["error"]["message"] == "prompt: is required"


@pytest.mark.parametrize("route", ["edits", "variations"])
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", "abc"),
        ("n", "1.5"),
        ("n", "11"),
        ("stream", "yes"),
        ("output_compression", "101"),
        ("seed", "-5"),
        ("steps", "0"),
        ("cfg_scale", "nan"),
        ("strength", "2"),
        ("output_format", "gif"),
        ("response_format", "jpeg"),
    ],
)
def test_form_fields_are_read_as_the_json_body_reads_them(
    impasto_daemon: Daemon, route: str, field: str, value: str
) -> None:
    """A multipart field is text; it is refused for the same reason, in the same words, as the
    same text in a JSON body (no second list of which field is a number)."""
    image = _png(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    with impasto_daemon.client() as http:
        form = http.post(
            f"/v1/images/{route}",
            files={"image": ("a.png", image, "image/png")},
            data={"prompt": "x", field: value},
        )
        as_json = http.post("/v1/images/generations", json={"prompt": "x", field: value})
    assert form.status_code == as_json.status_code == 400, form.text
    assert form.json()["error"]["param"] == field
    assert form.json()["error"]["message"] == as_json.json()["error"]["message"]
    if field in ("output_format", "response_format"):  # the choices, from the schema's enum
        document = http_document(impasto_daemon)
        choices = document["components"]["schemas"]["ImageGenerationRequest"]["properties"][field]
        allowed = ", ".join(value for value in choices["enum"] if value is not None)
        assert form.json()["error"]["message"] == f"{field}: must be one of {allowed}"


@pytest.mark.parametrize("route", ["edits", "variations"])
@pytest.mark.parametrize(
    ("image_size", "size", "param"),
    [((4, 4), None, "image"), ((3000, 64), None, "image"), ((64, 64), "64x4000", "size")],
)
def test_an_edit_or_variation_out_of_range_names_where_its_size_came_from(
    impasto_daemon: Daemon,
    route: str,
    image_size: tuple[int, int],
    size: str | None,
    param: str,
) -> None:
    """Without ``size`` the output takes the image's size: a 4x4 image is refused naming
    ``image`` (the request has no width or height to name), a bad ``size`` naming ``size``."""
    image = _png(Image.new("RGB", image_size))
    with impasto_daemon.client() as http:
        response = http.post(
            f"/v1/images/{route}",
            files={"image": ("a.png", image, "image/png")},
            data={"prompt": "x", **({"size": size} if size else {})},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert "between 64 and 2048" in error["message"]


def test_without_response_format_an_image_carries_both_its_url_and_its_data(
    client: openai.OpenAI, impasto_daemon: Daemon
) -> None:
    """dall-e-2 and 3 answer a URL by default and gpt-image-1 base64: a client written for
    either reads its field without asking for it."""
    response = client.images.generate(
        prompt="a kite", model="dall-e-3", size="64x64", extra_body=FAST
    )
    [image] = response.data
    assert image.url is not None and image.b64_json is not None
    with httpx.Client() as http:
        assert http.get(image.url).content == base64.b64decode(image.b64_json)
    with impasto_daemon.client() as http:
        for asked, fields in (
            ({"response_format": "b64_json"}, {"b64_json"}),
            ({"response_format": "url"}, {"url"}),
            ({"output_format": "jpeg"}, {"b64_json"}),  # re-encoded: not the URL's PNG
        ):
            body = {"prompt": "a kite", "size": "64x64", "steps": 2, **asked}
            data = http.post("/v1/images/generations", json=body).json()["data"]
            assert set(data[0]) == fields, asked


def test_an_answer_at_one_of_openais_sizes_says_its_size(client: openai.OpenAI) -> None:
    response = client.images.generate(
        prompt="a kite", size="1024x1024", response_format="b64_json", extra_body={"steps": 1}
    )
    assert response.size == "1024x1024"
    assert _decode(response.data[0].b64_json).size == (1024, 1024)


def test_a_model_name_that_is_not_installed_is_refused(client: openai.OpenAI) -> None:
    """OpenAI's names mean the current model (tools hard-code them); any other name that is
    not installed is a typo or a removed model, not a reason to draw with another one."""
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="a kite", model="sd-tiny-typo", size="64x64")
    error = info.value.body
    assert isinstance(error, dict)
    assert error["param"] == "model"
    assert error["message"].startswith("model 'sd-tiny-typo' is not installed; installed: ")
    assert "sd-tiny-turbo" in error["message"]
    for name in ("gpt-image-1-mini", "dall-e-2"):
        done = client.images.generate(
            prompt="a kite", model=name, size="64x64", extra_body=FAST, response_format="b64_json"
        )
        assert _embedded(_decode(done.data[0].b64_json))["model"] == "sd-tiny"


def test_a_lora_tag_that_is_not_installed_names_the_prompt(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.generate(prompt="a kite <lora:paper-cut:0.5>")
    error = info.value.body
    assert isinstance(error, dict)
    assert error["param"] == "prompt"
    assert error["message"].startswith("prompt: <lora:paper-cut:0.5>: LoRA 'paper-cut' is not")


def test_edit_with_an_opaque_mask_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            image=("a.png", _png(Image.new("RGB", (64, 64))), "image/png"),
            mask=("m.png", _png(Image.new("L", (64, 64))), "image/png"),
            prompt="x",
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "mask"


def test_an_edit_whose_mask_is_another_size_is_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            image=("a.png", _png(Image.new("RGB", (64, 64))), "image/png"),
            mask=("m.png", _png(Image.new("RGBA", (32, 32))), "image/png"),
            prompt="x",
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "mask" and "same dimensions" in info.value.body["message"]


def test_an_edit_of_several_images_is_refused(client: openai.OpenAI) -> None:
    """gpt-image models combine several images; this engine edits one, so a second image is a
    400 naming ``image`` rather than an edit of the first alone."""
    image = _png(Image.new("RGB", (64, 64)))
    with pytest.raises(openai.BadRequestError) as info:
        client.images.edit(
            image=[("a.png", image, "image/png"), ("b.png", image, "image/png")], prompt="x"
        )
    assert isinstance(info.value.body, dict)
    assert info.value.body["param"] == "image" and "2 images sent" in info.value.body["message"]


def test_an_unknown_route_answers_in_openais_error_shape(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.get("/nothing-here", cast_to=object)
    body = info.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert body["message"] == "Invalid URL (GET /v1/nothing-here)"


def test_models_lists_installed_checkpoints(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"sd-tiny", "sd-tiny-v", "sd-tiny-inpaint"} <= ids


def test_a_model_is_retrieved_by_its_id(client: openai.OpenAI) -> None:
    listed = {model.id: model for model in client.models.list()}
    model = client.models.retrieve("sd-tiny")
    assert model == listed["sd-tiny"]
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("dall-e-3")  # an OpenAI name is not an installed model
    assert isinstance(info.value.body, dict)
    assert (info.value.body["param"], info.value.body["code"]) == ("model", "model_not_found")


def test_variations_are_img2img_of_the_image(client: openai.OpenAI) -> None:
    source = Image.new("RGB", (96, 64), (30, 160, 90))
    response = client.images.create_variation(
        image=("source.png", _png(source), "image/png"),
        n=2,
        response_format="b64_json",
        extra_body={"seed": 21, **FAST},
    )
    assert len(response.data) == 2
    images = [_decode(item.b64_json) for item in response.data]
    assert {image.size for image in images} == {(96, 64)}  # no size: the image's own
    params = [_embedded(image) for image in images]
    assert [p["seed"] for p in params] == [21, 22]
    assert {p["extra"]["Denoising strength"] for p in params} == {"0.6"}
    # An img2img of the image: the same seed over another image gives another picture.
    other = client.images.create_variation(
        image=("other.png", _png(Image.new("RGB", (96, 64), (200, 40, 40))), "image/png"),
        response_format="b64_json",
        extra_body={"seed": 21, **FAST},
    )
    assert _decode(other.data[0].b64_json).tobytes() != images[0].tobytes()
    with httpx.Client(base_url=str(client.base_url).removesuffix("/v1/")) as http:
        job = http.get("/api/v1/history", params={"limit": 1}).json()["items"][0]
    assert job["plan"]["init_image"].startswith("upload:") and job["plan"]["strength"] == 0.6
    sized = client.images.create_variation(
        image=("source.png", _png(source), "image/png"),
        size="256x256",
        response_format="b64_json",
        extra_body=FAST,
    )
    assert _decode(sized.data[0].b64_json).size == (256, 256)


def _literals(annotation: Any) -> list[str]:
    """The strings of a ``Literal`` inside ``annotation`` (``Optional[Literal[...]]``)."""
    found: list[str] = []
    for arg in get_args(annotation):
        found += [arg] if isinstance(arg, str) else _literals(arg)
    return found


def test_every_quality_the_client_offers_is_accepted(client: openai.OpenAI) -> None:
    """``quality`` is without effect here, so no value the client's own type allows is refused
    (the gpt-image models added xhigh and max)."""
    offered = _literals(get_type_hints(image_generate_params.ImageGenerateParamsBase)["quality"])
    assert {"standard", "hd", "xhigh", "max"} <= set(offered)
    for quality in offered:
        answer = client.images.generate(
            prompt="x", size="64x64", quality=quality, extra_body={"steps": 1}
        )
        assert answer.data and answer.data[0].b64_json, quality


def test_a_job_cancelled_while_its_request_waits_is_not_sent_again(
    impasto_daemon: Daemon,
) -> None:
    """The client sends a 409 or 5xx again (twice by default) unless ``x-should-retry: false``:
    a cancelled job's request would be queued anew and answered with an image."""
    client = openai.OpenAI(base_url=f"{impasto_daemon.url}/v1", api_key="unused")
    prompt = "a kite cancelled once"
    outcome: dict[str, Any] = {}

    def generate() -> None:
        try:
            outcome["answer"] = client.images.generate(prompt=prompt, size="64x64", extra_body=FAST)
        except openai.APIStatusError as exc:
            outcome["error"] = exc

    with impasto_daemon.client() as http:
        assert http.post("/api/v1/queue/pause").status_code == 200
        caller = threading.Thread(target=generate)
        try:
            caller.start()
            deadline = time.monotonic() + 30
            queued: list[dict[str, Any]] = []
            while not queued and time.monotonic() < deadline:
                queued = [
                    j for j in http.get("/api/v1/queue").json()["items"] if j["status"] == "queued"
                ]
                time.sleep(0.05)
            assert len(queued) == 1
            assert http.post(f"/api/v1/generate/{queued[0]['id']}/cancel").status_code == 200
        finally:
            http.post("/api/v1/queue/resume")
            caller.join(60)
        mine = [
            item
            for item in http.get("/api/v1/history", params={"limit": 20}).json()["items"]
            if item.get("request", {}).get("prompt") == prompt
        ]
    assert "answer" not in outcome, "the client queued the cancelled request again"
    error = outcome["error"]
    assert error.status_code == 409 and "cancelled" in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert len(mine) == 1


def test_a_request_whose_client_gave_up_has_its_job_cancelled(impasto_daemon: Daemon) -> None:
    """After its timeout the openai client closes the connection and sends the request again:
    the first request's job is cancelled, not left to run for nobody ahead of the new one."""
    client = openai.OpenAI(
        base_url=f"{impasto_daemon.url}/v1", api_key="unused", max_retries=0, timeout=1.5
    )
    prompt = "a kite nobody waits for"
    with impasto_daemon.client() as http:
        assert http.post("/api/v1/queue/pause").status_code == 200
        try:
            with pytest.raises(openai.APITimeoutError):
                client.images.generate(prompt=prompt, size="64x64", extra_body=FAST)
            statuses = statuses_of_prompt(http, prompt, ["cancelled"], 10)
        finally:
            http.post("/api/v1/queue/resume")
    assert statuses == ["cancelled"]
