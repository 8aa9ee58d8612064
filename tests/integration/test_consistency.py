"""Generation is as reproducible as A1111 and ComfyUI users expect, through the real daemon:
the same request gives the same pixels, image i of a batch is seed + i, a PNG's parameters
text pasted back redraws it, nothing of one job (an adapter, a model, a cancel) leaks into the
next, and the native API and ``/sdapi`` agree where docs/compat.md maps one onto the other."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.harness import http_with_models, wait_status

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"
BASE = {"prompt": "a red circle on a blue background", "width": 64, "height": 64, "steps": 3}


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with http_with_models(tmp_path_factory.mktemp("consistency"), ADAPTERS) as client:
        yield client


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def native(http: httpx.Client, **fields: Any) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Every picture of one native job, with its result record."""
    response = http.post("/api/v1/generate", json={**BASE, "seed": 100, **fields})
    assert response.status_code == 202, response.text
    done = wait_status(http, response.json()["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    return [(_pixels(http.get(r["url"]).content), r) for r in done["results"]]


def first(http: httpx.Client, **fields: Any) -> np.ndarray:
    return native(http, **fields)[0][0]


def sdapi(
    http: httpx.Client, route: str, **fields: Any
) -> tuple[list[np.ndarray], dict[str, Any], list[str]]:
    """The pictures, the parsed ``info`` and each PNG's ``parameters`` of one A1111 call."""
    response = http.post(f"/sdapi/v1/{route}", json=fields)
    assert response.status_code == 200, response.text
    pngs = [Image.open(io.BytesIO(base64.b64decode(s))) for s in response.json()["images"]]
    pixels = [np.asarray(png.convert("RGB")) for png in pngs]
    return pixels, json.loads(response.json()["info"]), [png.info["parameters"] for png in pngs]


def b64png(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def upload(http: httpx.Client, pixels: np.ndarray) -> str:
    files = {"file": ("i.png", base64.b64decode(b64png(pixels)), "image/png")}
    response = http.post("/api/v1/images", files=files)
    assert response.status_code in (200, 201), response.text
    return f"upload:{response.json()['id']}"


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def test_every_sampler_gives_the_same_pixels_twice(http: httpx.Client) -> None:
    samplers = [s["name"] for s in http.get("/sdapi/v1/samplers").json()]
    assert len(samplers) >= 20
    for model in ("sd-tiny", "sdxl-tiny"):
        for name in samplers:
            body = {**BASE, "steps": 2, "seed": 11, "sampler_name": name}
            body["override_settings"] = {"sd_model_checkpoint": model}
            one, _, _ = sdapi(http, "txt2img", **body)
            two, _, _ = sdapi(http, "txt2img", **body)
            assert same(one[0], two[0]), (model, name)


@pytest.mark.parametrize(
    "fields",
    [
        {"sampler": "euler_a"},
        {"sampler": "dpmpp_sde", "model": "sdxl-tiny"},
        {"subseed": 777, "subseed_strength": 0.4, "sampler": "euler_a"},
        {"hires": {"scale": 1.5, "strength": 0.5}, "sampler": "euler_a"},
        {"rng": "cpu", "noise_seed_delta": 31337, "sampler": "euler_a"},
        {"seed_resize_from_width": 96, "seed_resize_from_height": 96},
    ],
    ids=["ancestral", "sdxl-sde", "variation", "hires", "cpu-ensd", "seed-resize"],
)
def test_image_i_of_a_batch_is_the_single_picture_of_seed_plus_i(
    http: httpx.Client, fields: dict[str, Any]
) -> None:
    batch = native(http, batch_size=3, **fields)
    assert [result["seed"] for _, result in batch] == [100, 101, 102]
    for i, (pixels, _) in enumerate(batch):
        variation = {"subseed": fields["subseed"] + i} if "subseed" in fields else {}
        assert same(pixels, first(http, **{**fields, "seed": 100 + i, **variation})), i


def test_img2img_and_inpaint_batches_are_seed_plus_i(http: httpx.Client) -> None:
    init = upload(http, first(http, seed=1))
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[16:48, 16:48] = 255
    for model, extra in (
        ("sd-tiny", {}),
        ("sd-tiny-inpaint", {"mask_image": upload(http, mask), "inpaint_area": "masked"}),
    ):
        fields = {"model": model, "init_image": init, "strength": 0.6, "sampler": "euler_a"}
        fields |= extra
        batch = native(http, batch_size=2, **fields)
        for i, (pixels, _) in enumerate(batch):
            assert same(pixels, first(http, **fields, seed=100 + i)), (model, i)


@pytest.mark.parametrize(
    ("route", "fields"),
    [
        ("txt2img", {"subseed": 900, "subseed_strength": 0.5}),
        ("txt2img", {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.5}),
        ("img2img", {"denoising_strength": 0.6}),
    ],
    ids=["variation", "hires", "img2img"],
)
def test_sdapi_batches_and_iterations_number_seeds_as_a1111(
    http: httpx.Client, route: str, fields: dict[str, Any]
) -> None:
    body = {**BASE, "seed": 200, "sampler_name": "Euler a", **fields}
    if route == "img2img":
        body["init_images"] = [b64png(first(http, seed=1))]
    pictures, info, _ = sdapi(http, route, **body, batch_size=2, n_iter=2)
    assert info["all_seeds"] == [200, 201, 202, 203]
    for i, seed in enumerate(info["all_seeds"]):
        variation = {"subseed": info["all_subseeds"][i]} if "subseed" in fields else {}
        alone, _, _ = sdapi(http, route, **{**body, "seed": seed, **variation})
        assert same(pictures[i], alone[0]), i


@pytest.mark.parametrize(
    "fields",
    [
        {"sampler_name": "DPM++ 2M", "scheduler": "Exponential", "cfg_scale": 4.5},
        {"sampler_name": "Heun", "width": 96, "height": 72},
        {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.45, "hr_second_pass_steps": 2},
        {"enable_hr": True, "hr_resize_x": 80, "hr_resize_y": 96, "hr_sampler_name": "DPM++ 2M"},
        {"prompt": "a circle <lora:tiny-peft:0.6> and <lora:tiny-kohya:-0.5>"},
        {"subseed": 55, "subseed_strength": 0.3, "sampler_name": "Euler a"},
        {"sampler_name": "Euler a", "override_settings": {"eta_noise_seed_delta": 31337}},
        {"sampler_name": "DPM++ SDE", "override_settings": {"randn_source": "NV"}},
        {"tiling": True, "override_settings": {"sd_vae": "sd-tiny-vae-alt"}},
        {"seed_resize_from_w": 96, "seed_resize_from_h": 80},
    ],
    ids=[
        *("schedule", "size", "hires", "hires-resize", "loras"),
        *("variation", "ensd", "nv", "vae", "seed-resize"),
    ],
)
def test_the_png_parameters_pasted_back_redraw_the_picture(
    http: httpx.Client, fields: dict[str, Any]
) -> None:
    """A1111's "send to txt2img": the ``infotext`` field alone gives the same pixels."""
    pictures, _, texts = sdapi(http, "txt2img", **{**BASE, "seed": 321, **fields})
    again, _, _ = sdapi(http, "txt2img", infotext=texts[0])
    assert same(pictures[0], again[0]), texts[0]


@pytest.mark.parametrize(
    "fields",
    [
        {"hires": {"scale": 1.5, "strength": 0.5}},  # img2img_steps: the native "strength"
        {"hires": {"scale": 1.5, "strength": 0.45, "steps": 2}, "img2img_steps": "a1111"},
        {"strength": 0.6},
        {"strength": 0.6, "img2img_steps": "exact"},
        {"strength": 0.55, "img2img_steps": "a1111"},  # A1111's own: no label
    ],
    ids=["hires-strength", "hires-a1111", "img2img-strength", "img2img-exact", "img2img-a1111"],
)
def test_a_native_picture_from_an_image_redraws_from_its_parameters(
    http: httpx.Client, fields: dict[str, Any]
) -> None:
    """How a run from an image counted its steps travels in the text (``Img2img steps``), so a
    native picture pasted into /sdapi (A1111's "send to img2img") gives the same pixels."""
    init = first(http, seed=1)
    body = {"model": "sd-tiny", "sampler": "euler_a", "schedule": "uniform", **fields}
    route, extra = "txt2img", {}
    if "strength" in fields:
        route, extra = "img2img", {"init_images": [b64png(init)]}
        body["init_image"] = upload(http, init)
    [(pixels, result)] = native(http, **body)
    text = result["metadata"]["parameters"]
    mode = fields.get("img2img_steps", "strength")
    assert ("Img2img steps" in text) == (mode != ("a1111" if route == "img2img" else "exact"))
    again, _, _ = sdapi(http, route, infotext=text, **extra)
    assert same(pixels, again[0]), text


def test_sdapi_img2img_with_fixed_steps_redraws_from_its_text_without_the_option(
    http: httpx.Client,
) -> None:
    """``img2img_fix_steps`` is an option, not in A1111's text: Impasto's text says
    ``Img2img steps: exact``, so pasting it back redraws without setting the option."""
    init = [b64png(first(http, seed=1))]
    body = {**BASE, "seed": 4, "denoising_strength": 0.6, "init_images": init}
    fixed = {"override_settings": {"img2img_fix_steps": True}}
    pictures, _, texts = sdapi(http, "img2img", **body, **fixed)
    assert "Img2img steps: exact" in texts[0]
    again, _, _ = sdapi(http, "img2img", infotext=texts[0], init_images=init)
    assert same(pictures[0], again[0]), texts[0]
    plain, _, plain_texts = sdapi(http, "img2img", **body)
    assert "Img2img steps" not in plain_texts[0]
    assert not same(plain[0], pictures[0])


@pytest.mark.parametrize(
    "fields",
    [
        {"mask_blur": 9, "inpainting_mask_invert": 1},
        {"mask_blur": 0, "inpaint_full_res": False},
        {"mask_blur_x": 2, "mask_blur_y": 12, "inpainting_fill": 2},
    ],
    ids=["blur-inverted", "no-blur-whole", "blur-x-y"],
)
def test_an_sdapi_inpainting_redraws_from_its_png_parameters(
    http: httpx.Client, fields: dict[str, Any]
) -> None:
    """The mask's blur and inversion, applied before the job, are in the PNG's text as A1111
    writes them (``Mask blur``, ``Mask mode``), so pasting it back does not blur by 4."""
    init = [b64png(first(http, seed=1))]
    shape = np.zeros((64, 64, 3), np.uint8)
    shape[12:40, 20:52] = 255
    images = {"init_images": init, "mask": b64png(shape)}
    body = {**BASE, "seed": 8, "denoising_strength": 0.8, **images, **fields}
    response = http.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    png = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    text = png.info["parameters"]
    assert json.loads(response.json()["info"])["infotexts"] == [text]
    blur = fields.get("mask_blur")
    assert (f"Mask blur: {blur}" in text) == (blur is not None), text
    assert ("Mask mode: Inpaint not masked" in text) == ("inpainting_mask_invert" in fields)
    again, _, _ = sdapi(http, "img2img", infotext=text, **images)
    assert same(np.asarray(png.convert("RGB")), again[0]), text


def test_clip_skip_and_model_in_the_parameters_redraw_the_picture(http: httpx.Client) -> None:
    settings = {"sd_model_checkpoint": "sd-tiny-turbo", "CLIP_stop_at_last_layers": 2}
    body = {**BASE, "seed": 5, "cfg_scale": 1, "steps": 1, "override_settings": settings}
    pictures, _, texts = sdapi(http, "txt2img", **body)
    assert "Clip skip: 2" in texts[0]
    assert http.post("/sdapi/v1/options", json={"disable_weights_auto_swap": False}).is_success
    try:
        again, _, _ = sdapi(http, "txt2img", infotext=texts[0])
    finally:
        reset = {"disable_weights_auto_swap": True, "sd_model_checkpoint": "sd-tiny"}
        http.post("/sdapi/v1/options", json=reset)
    assert same(pictures[0], again[0]), texts[0]


def test_a_random_seed_is_new_each_time_and_the_reported_one_redraws(http: httpx.Client) -> None:
    seeds = set()
    for _ in range(2):
        batch = native(http, seed=-1, batch_size=2, subseed=-1, subseed_strength=0.3)
        first_seed = batch[0][1]["seed"]
        assert batch[1][1]["seed"] == first_seed + 1
        seeds.add(first_seed)
        plan = batch[1][1]["metadata"]["impasto"]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        redrawn = first(http, seed=plan["seed"], subseed=plan["subseed"], subseed_strength=0.3)
        assert same(batch[1][0], redrawn)
    assert len(seeds) == 2
    pictures, info, _ = sdapi(http, "txt2img", **BASE, seed=-1, batch_size=2, n_iter=2)
    assert info["all_seeds"] == [info["seed"] + i for i in range(4)]
    alone, _, _ = sdapi(http, "txt2img", **BASE, seed=info["all_seeds"][3])
    assert same(pictures[3], alone[0])


def test_nothing_of_one_job_leaks_into_the_next_across_models(http: httpx.Client) -> None:
    """An adapter, a swapped VAE, clip skip, tiling, DeepCache or a refiner changes only its
    own job: the plain request after it, on this model or another, gives the plain picture."""
    plain = {
        "sd-tiny": {"model": "sd-tiny"},
        "sdxl-tiny": {"model": "sdxl-tiny"},
        "sd-tiny-turbo": {"model": "sd-tiny-turbo", "cfg_scale": 1.0, "steps": 1},
    }
    reference = {model: first(http, **body) for model, body in plain.items()}
    for model, extra in (
        ("sd-tiny", {"loras": [{"name": "tiny-peft", "weight": 1.0}]}),
        ("sd-tiny", {"prompt": "tiny-a1111 <lora:tiny-kohya:-0.8>", "vae": "sd-tiny-vae-alt"}),
        ("sd-tiny", {"tiling": True}),
        ("sd-tiny", {"cache_interval": 2, "steps": 4}),
        ("sd-tiny-turbo", {"clip_skip": 2}),
        ("sdxl-tiny", {"refiner": "sdxl-tiny-refiner"}),
        ("sdxl-tiny", {"tiling": "x"}),
    ):
        first(http, **{**plain[model], **extra})
        for other, body in plain.items():
            assert same(first(http, **body), reference[other]), (extra, other)


def test_a_job_cancelled_midway_leaves_the_rerun_unchanged(http: httpx.Client) -> None:
    body = {**BASE, "width": 128, "height": 128, "steps": 30, "seed": 77, "sampler": "euler_a"}
    body["loras"] = [{"name": "tiny-peft", "weight": 0.7}]
    reference = first(http, **body)
    job = http.post("/api/v1/generate", json=body).json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = http.get(f"/api/v1/generate/{job}").json()
        if state["status"] != "queued" and (state.get("current_step") or 0) >= 3:
            break
        time.sleep(0.01)
    http.post(f"/api/v1/generate/{job}/cancel")
    assert wait_status(http, job, {"completed", "failed", "cancelled"})["status"] == "cancelled"
    assert same(first(http, **body), reference)


@pytest.mark.parametrize(
    ("a1111", "mapped"),
    [
        ({"sampler_name": "Euler a"}, {"sampler": "euler_a", "schedule": "uniform"}),
        ({"sampler_name": "DPM++ 2M"}, {"sampler": "dpmpp_2m", "schedule": "karras"}),
        (
            {"sampler_name": "Euler a", "override_settings": {"randn_source": "CPU"}},
            {"sampler": "euler_a", "schedule": "uniform", "rng": "cpu"},
        ),
        (
            {"sampler_name": "Euler", "enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Lanczos"}
            | {"denoising_strength": 0.5, "hr_second_pass_steps": 2},
            {"sampler": "euler", "schedule": "uniform", "img2img_steps": "exact"}
            | {"hires": {"scale": 1.5, "strength": 0.5, "steps": 2, "upscaler": "lanczos"}},
        ),
        (
            {"sampler_name": "Euler a", "prompt": BASE["prompt"] + " <lora:tiny-peft:0.7>"}
            | {"override_settings": {"sd_vae": "sd-tiny-vae-alt"}, "width": 72, "height": 120},
            {"sampler": "euler_a", "schedule": "uniform", "vae": "sd-tiny-vae-alt"}
            | {"loras": [{"name": "tiny-peft", "weight": 0.7}], "width": 72, "height": 120},
        ),
        (
            {"sampler_name": "Euler a", "refiner_checkpoint": "sdxl-tiny-refiner"}
            | {"override_settings": {"sd_model_checkpoint": "sdxl-tiny"}},
            {"sampler": "euler_a", "schedule": "uniform", "model": "sdxl-tiny"}
            | {"refiner": "sdxl-tiny-refiner"},
        ),
    ],
    ids=["euler-a", "dpmpp-2m-automatic", "cpu-rng", "hires", "lora-vae-size", "refiner"],
)
def test_native_and_sdapi_give_the_same_pixels_where_mapped(
    http: httpx.Client, a1111: dict[str, Any], mapped: dict[str, Any]
) -> None:
    pictures, _, _ = sdapi(http, "txt2img", **{**BASE, "seed": 9, "cfg_scale": 6, **a1111})
    assert same(pictures[0], first(http, **{"seed": 9, "cfg_scale": 6, **mapped}))


def test_img2img_through_both_apis_gives_the_same_pixels(http: httpx.Client) -> None:
    init = first(http, seed=1)
    body = {**BASE, "seed": 9, "sampler_name": "Euler a", "denoising_strength": 0.6}
    pictures, _, _ = sdapi(http, "img2img", **body, init_images=[b64png(init)])
    fields = {"seed": 9, "sampler": "euler_a", "schedule": "uniform", "strength": 0.6}
    fields |= {"init_image": upload(http, init), "img2img_steps": "a1111"}
    assert same(pictures[0], first(http, **fields))


def test_sizes_of_eights_small_and_non_square_work_on_every_family(http: httpx.Client) -> None:
    models = ["sd-tiny", "sd-tiny-inpaint", "sd-tiny-lcm", "sd-tiny-turbo", "sd-tiny-v"]
    models += ["sdxl-tiny", "sdxl-tiny-turbo", "impasto-shapes"]
    for model in models:
        for width, height in ((64, 64), (72, 136), (200, 64), (88, 104)):
            pixels = first(http, model=model, width=width, height=height, steps=2)
            assert pixels.shape == (height, width, 3), (model, width, height)
            assert pixels.std() > 1, (model, width, height)


def test_a_part_that_cannot_wrap_is_refused_naming_the_tiling_sent(http: httpx.Client) -> None:
    body = {**BASE, "model": "sdxl-tiny", "refiner": "sdxl-tiny-refiner", "tiling": "x"}
    refused = http.post("/api/v1/generate", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "refiner"
    assert 'tiling: "x"' in refused.json()["detail"], refused.text
