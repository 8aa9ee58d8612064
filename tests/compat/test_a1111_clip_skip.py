"""A1111's Clip skip (``CLIP_stop_at_last_layers``, per request in ``override_settings`` or set
with ``/options``) is the native ``clip_skip``, checked as A1111's settings slider (1-12)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from impasto.formats.png import parse_a1111_parameters
from tests.harness import Daemon, generated_pixels

# sd-tiny-turbo's text encoder exports every layer's hidden state; sd-tiny's only the last.
MODEL = "sd-tiny-turbo"
BODY = {"prompt": "a lighthouse at dusk", "seed": 5, "steps": 1, "cfg_scale": 1.0}
BODY |= {"width": 64, "height": 64, "sampler_name": "Euler", "scheduler": "Automatic"}
OPTION = "CLIP_stop_at_last_layers"


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    daemon = Daemon(tmp_path_factory.mktemp("clip-skip")).start()
    try:
        daemon.wait_worker_ready()
        with daemon.client() as client:
            yield client
    finally:
        daemon.stop()


def txt2img(http: httpx.Client, **overrides: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """The first picture's pixels and the parsed ``info`` of one A1111 txt2img call."""
    settings = {"sd_model_checkpoint": MODEL, **overrides}
    answer = http.post("/sdapi/v1/txt2img", json={**BODY, "override_settings": settings})
    assert answer.status_code == 200, answer.text
    png = Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0])))
    return np.asarray(png, dtype=np.int16), json.loads(answer.json()["info"])


def native(http: httpx.Client, clip_skip: int) -> np.ndarray:
    body = {"prompt": BODY["prompt"], "seed": 5, "steps": 1, "cfg_scale": 1.0, "model": MODEL}
    body |= {"width": 64, "height": 64, "sampler": "euler", "clip_skip": clip_skip}
    return generated_pixels(http, body)


def test_override_setting_skips_clip_layers_as_the_native_field_does(http: httpx.Client) -> None:
    plain, plain_info = txt2img(http)
    skipped, info = txt2img(http, **{OPTION: 2})
    assert np.abs(skipped - plain).max() > 0
    np.testing.assert_array_equal(skipped, native(http, 2))
    np.testing.assert_array_equal(plain, native(http, 1))
    assert (plain_info["clip_skip"], info["clip_skip"]) == (1, 2)
    extra = parse_a1111_parameters(info["infotexts"][0])["extra"]
    assert extra.get("Clip skip") == "2"


def test_the_set_option_applies_until_a_request_overrides_it(http: httpx.Client) -> None:
    plain, _ = txt2img(http)
    assert http.post("/sdapi/v1/options", json={OPTION: 2}).status_code == 200
    try:
        assert http.get("/sdapi/v1/options").json()[OPTION] == 2
        stored, info = txt2img(http)
        overridden, _ = txt2img(http, **{OPTION: 1})
    finally:
        http.post("/sdapi/v1/options", json={OPTION: 1})
    assert info["clip_skip"] == 2 and np.abs(stored - plain).max() > 0
    np.testing.assert_array_equal(overridden, plain)


@pytest.mark.parametrize("value", [0, 13, 1.5, "2", True, None])
def test_out_of_range_values_are_refused_and_nothing_is_kept(
    http: httpx.Client, value: object
) -> None:
    before = http.get("/api/v1/queue").json()
    refused = http.post("/sdapi/v1/options", json={OPTION: value, "samples_format": "jpg"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", OPTION]
    assert "between 1 and 12" in refused.json()["detail"][0]["msg"]
    options = http.get("/sdapi/v1/options").json()
    assert options[OPTION] == 1 and options["samples_format"] == "png"
    settings = {"sd_model_checkpoint": MODEL, OPTION: value}
    request = http.post("/sdapi/v1/txt2img", json={**BODY, "override_settings": settings})
    assert request.status_code == 422, request.text
    assert request.json()["detail"][0]["loc"] == ["body", f"override_settings.{OPTION}"]
    assert http.get("/api/v1/queue").json() == before


def test_a_model_skips_as_many_layers_as_it_has(http: httpx.Client) -> None:
    """A1111 applies Clip skip to every model, so a model exported without hidden states
    (sd-tiny) draws without skipping, and sd-tiny-turbo (2 layers) skips at most 2."""
    plain, _ = txt2img(http, sd_model_checkpoint="sd-tiny")
    lowered, info = txt2img(http, sd_model_checkpoint="sd-tiny", **{OPTION: 2})
    np.testing.assert_array_equal(lowered, plain)
    assert info["clip_skip"] == 1
    two, _ = txt2img(http, **{OPTION: 2})
    most, info = txt2img(http, **{OPTION: 3})
    np.testing.assert_array_equal(most, two)
    assert info["clip_skip"] == 2


def test_the_xyz_clip_skip_axis_lowers_it_as_the_option_does(http: httpx.Client) -> None:
    """The X/Y/Z "Clip skip" axis on a model without hidden states (sd-tiny) draws each cell
    as the option would: without skipping (it was a 422 there), after a checkpoint axis too."""
    body = {**BODY, "override_settings": {"sd_model_checkpoint": "sd-tiny"}, "seed": 9}
    # Legend off, sub-images in (A1111's include_lone_images), the rest at their defaults.
    options = [False, True, False, False, 0, False, False]
    nothing = [0, "", []]
    clip_axis = ["Clip skip", "1,2", []]
    body |= {"script_name": "x/y/z plot", "script_args": [*clip_axis, *nothing, *nothing, *options]}
    answer = http.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    _, one, two = (Image.open(io.BytesIO(base64.b64decode(i))) for i in answer.json()["images"])
    np.testing.assert_array_equal(np.asarray(one), np.asarray(two))
    checkpoints = ["Checkpoint name", f"sd-tiny,{MODEL}", []]
    both = {**body, "script_args": [*clip_axis, *checkpoints, *nothing, *options]}
    both["script_args"][1] = "2"
    crossed = http.post("/sdapi/v1/txt2img", json=both)
    assert crossed.status_code == 200, crossed.text
    _, tiny, turbo = (Image.open(io.BytesIO(base64.b64decode(i))) for i in crossed.json()["images"])
    assert "Clip skip: 2" in turbo.info["parameters"]  # the model that can skip, skips
    assert "Clip skip" not in tiny.info["parameters"]


@pytest.mark.parametrize(
    ("model", "clip_skip", "message"),
    [("sd-tiny", 2, "without hidden states"), (MODEL, 3, "between 1 and 2")],
)
def test_the_native_api_refuses_what_the_model_cannot_skip(
    http: httpx.Client, model: str, clip_skip: int, message: str
) -> None:
    before = http.get("/api/v1/queue").json()
    body = {"prompt": "a tree", "model": model, "clip_skip": clip_skip, "width": 64, "height": 64}
    refused = http.post("/api/v1/generate", json=body)
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["field"] == "clip_skip" and message in error["message"], error
    assert http.get("/api/v1/queue").json() == before


def test_the_model_list_says_how_many_layers_each_model_can_skip(http: httpx.Client) -> None:
    models = ("sd-tiny", MODEL)
    limits = {m: http.get(f"/api/v1/models/{m}").json()["clip_skip_max"] for m in models}
    assert limits == {"sd-tiny": 1, MODEL: 2}
    # SDXL reads the penultimate layer already: its 2-layer tiny encoders skip none more.
    assert http.get("/api/v1/models/sdxl-tiny").json()["clip_skip_max"] == 1
