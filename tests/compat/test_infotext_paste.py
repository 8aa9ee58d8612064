"""Every setting the PNG's ``parameters`` text holds reads back to the same run: a native
picture's text pasted into ``/sdapi`` (``infotext``, A1111's "send to txt2img/img2img") makes
the job whose plan (the PNG's ``impasto`` chunk) is the first one's, field for field; and
texts written by real AUTOMATIC1111 versions (hires fix, refiner, extensions' labels, quoted
values, hashes) are read without an error, their unknown labels kept by ``/png-info`` and
ignored by a run, as A1111 does."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, PngImagePlugin

from tests.harness import http_with_models, wait_status

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"
BASE = {"prompt": "a red circle, on: a blue background", "width": 64, "height": 64, "steps": 3}
# Plan fields the text does not carry by design: the uploads' ids (sent again beside the
# text), and what the API adds on its own.
NOT_IN_TEXT = {"init_image", "mask_image", "id", "created_at"}
# A1111's own patterns (modules/infotext_utils.py), to list a text's labels as A1111 does.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with http_with_models(tmp_path_factory.mktemp("infotext"), ADAPTERS) as client:
        yield client


def _png(pixels: Image.Image) -> bytes:
    buffer = io.BytesIO()
    pixels.save(buffer, "PNG")
    return buffer.getvalue()


INIT = Image.new("RGB", (64, 64), (200, 40, 40))
MASK = Image.new("L", (64, 64), 0)
MASK.paste(255, (16, 16, 48, 48))


def _upload(http: httpx.Client, image: Image.Image) -> str:
    response = http.post("/api/v1/images", files={"file": ("i.png", _png(image), "image/png")})
    assert response.status_code in (200, 201), response.text
    return f"upload:{response.json()['id']}"


def _plan(chunk: Any) -> dict[str, Any]:
    plan = json.loads(chunk) if isinstance(chunk, str) else dict(chunk)
    return {key: value for key, value in plan.items() if key not in NOT_IN_TEXT}


def _native(http: httpx.Client, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = http.post("/api/v1/generate", json=body)
    assert response.status_code == 202, response.text
    done = wait_status(http, response.json()["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    metadata = done["results"][0]["metadata"]
    return metadata["parameters"], _plan(metadata["impasto"])


def _sdapi(http: httpx.Client, route: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    response = http.post(f"/sdapi/v1/{route}", json=body)
    assert response.status_code == 200, response.text
    png = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    return png.info["parameters"], _plan(png.info["impasto"])


NATIVE = [
    {"sampler": "dpmpp_2m", "schedule": "karras", "cfg_scale": 4.5, "width": 72, "height": 96},
    {"sampler": "euler_a", "eta": 0.6, "subseed": 12, "subseed_strength": 0.3},
    {"sampler": "euler", "s_churn": 0.5, "s_tmin": 0.1, "s_noise": 0.9, "noise_seed_delta": 7},
    {"sampler": "dpmpp_2m", "schedule": "karras", "sigma_min": 0.1, "rho": 5.0},
    {"sampler": "unipc", "unipc_order": 2, "unipc_variant": "bh1", "s_min_uncond": 1.5},
    {
        "sampler": "euler_a",
        "rng": "cpu",
        "seed_resize_from_width": 96,
        "seed_resize_from_height": 80,
    },
    {"tiling": True, "vae": "sd-tiny-vae-alt", "sampler": "heun", "skip_early_cond": 0.2},
    {"prompt": "a circle <lora:tiny-peft:0.6>", "negative_prompt": "blur, noise: none"},
    {"hires": {"scale": 1.5, "strength": 0.5, "steps": 2, "upscaler": "lanczos"}},
    {
        "hires": {"width": 80, "height": 96, "strength": 0.4, "sampler": "dpmpp_2m"}
        | {"prompt": "sharper", "negative_prompt": "soft", "cfg_scale": 3.0},
        "extra_noise": 0.1,
        "img2img_steps": "a1111",
    },
    {"init": True, "strength": 0.6, "noise_multiplier": 0.9, "img2img_steps": "exact"},
    {"init": True, "mask": True, "inpaint_area": "masked", "inpaint_padding": 8}
    | {"masked_content": "fill", "strength": 0.7},
    {"init": True, "mask": True, "masked_content": "latent_noise", "sampler": "ddim", "eta": 0.3},
]


@pytest.mark.parametrize("fields", NATIVE, ids=[str(i) for i in range(len(NATIVE))])
def test_a_native_pictures_text_pasted_into_sdapi_makes_the_same_plan(
    http: httpx.Client, fields: dict[str, Any]
) -> None:
    body = {**BASE, "model": "sd-tiny", "seed": 31, **fields}
    images: dict[str, Any] = {}
    if body.pop("init", False):
        body["init_image"] = _upload(http, INIT)
        images["init_images"] = [base64.b64encode(_png(INIT)).decode()]
    if body.pop("mask", False):
        body["mask_image"] = _upload(http, MASK)
        # A1111's mask, as the native one: not blurred (a native mask is used as it is).
        images |= {"mask": base64.b64encode(_png(MASK)).decode(), "mask_blur": 0}
    text, plan = _native(http, body)
    route = "img2img" if images else "txt2img"
    _, again = _sdapi(http, route, {"infotext": text, **images})
    differ = {key for key in plan.keys() | again.keys() if plan.get(key) != again.get(key)}
    assert not differ, (text, {key: (plan.get(key), again.get(key)) for key in differ})


# Texts as real AUTOMATIC1111 versions write them (1.5 to 1.10, with extensions), made small.
A1111_TEXTS = {
    "1.10-hires-adetailer-hashes": (
        "masterpiece, 1girl, <lora:tiny-peft:0.5>, (smile:1.2), [blue|red] hair\n"
        "Negative prompt: EasyNegative, (worst quality:1.4), lowres\n"
        "Steps: 3, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234567890, "
        "Size: 64x64, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, VAE hash: 735e4c3a44, "
        "VAE: vae-ft-mse-840000-ema-pruned.safetensors, Denoising strength: 0.45, Clip skip: 2, "
        "ADetailer model: face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, "
        "ADetailer mask blur: 4, ADetailer denoising strength: 0.4, ADetailer inpaint only "
        "masked: True, ADetailer inpaint padding: 32, ADetailer version: 24.1.2, Hires upscale: "
        '1.5, Hires steps: 2, Hires upscaler: Latent, Lora hashes: "tiny-peft: 7c6bad76eb54", '
        'TI hashes: "EasyNegative: c74b4e810b03, EasyNegative: c74b4e810b03", Emphasis: '
        "Original, Version: v1.10.1"
    ),
    "1.6-refiner-controlnet-quoted": (
        "a castle on a hill\n"
        "Steps: 2, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 72x64, Model hash: "
        "31e35c80fc, Model: sd_xl_base_1.0, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner "
        'switch at: 0.8, ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny '
        "[d14c016b], Weight: 1.0, Resize Mode: Crop and Resize, Low Vram: False, Guidance "
        'Start: 0.0, Guidance End: 1.0, Pixel Perfect: True, Control Mode: Balanced", Template: '
        '"a \\"quoted\\" prompt, with: a colon", Token merging ratio: 0.3, Version: v1.6.0'
    ),
    "1.5-sampler-with-schedule-variation": (
        "portrait photo\nNegative prompt: blurry\n"
        "Steps: 2, Sampler: DPM++ 2M Karras, CFG scale: 5, Seed: 7, Size: 64x64, Model hash: "
        "e6bb9ea85b, Model: realisticVision, Variation seed: 99, Variation seed strength: 0.25, "
        "Seed resize from: 96x96, Denoising strength: 0.5, Hires resize: 80x80, Hires upscaler: "
        "Lanczos, ENSD: 31337, Eta: 0.5, Version: v1.5.1"
    ),
    "1.9-schedule-type-automatic-extras": (
        "a forest, 午後\n"
        "Steps: 2, Sampler: Euler, Schedule type: Automatic, CFG scale: 3, Seed: 5, Size: 64x64, "
        "Model: sd-tiny, NGMS: 0.5, Pad conds: True, FP8 weight: Disable, Cache FP16 weight for "
        "LoRA: False, Downcast alphas_cumprod: True, Hypertile U-Net: True, Dynamic "
        'thresholding: "mimic: 7, percentile: 99.9", Version: f0.0.17v1.8.0rc'
    ),
}
# What each run takes from its text (the rest is ignored, as A1111 ignores it).
A1111_WANTED = {
    "1.10-hires-adetailer-hashes": {
        "steps": 3, "sampler": "dpmpp_2m", "schedule": "karras", "cfg_scale": 6.5,
        "seed": 1234567890, "loras": [{"name": "tiny-peft", "weight": 0.5, "unet_weight": None}],
        "hires": {"width": 96, "height": 96, "steps": 2, "strength": 0.45, "upscaler": "latent"},
    },
    "1.6-refiner-controlnet-quoted": {
        "steps": 2, "sampler": "euler_a", "seed": 42, "width": 72, "refiner": None,
    },
    "1.5-sampler-with-schedule-variation": {
        "sampler": "dpmpp_2m", "schedule": "karras", "subseed": 99, "subseed_strength": 0.25,
        "seed_resize_from_width": 96, "noise_seed_delta": 31337,
        "hires": {"width": 80, "height": 80, "strength": 0.5, "upscaler": "lanczos"},
    },
    "1.9-schedule-type-automatic-extras": {
        "prompt": "a forest, 午後", "sampler": "euler", "cfg_scale": 3.0, "s_min_uncond": 0.5,
    },
}  # fmt: skip


def _within(wanted: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``wanted`` that ``plan`` does not have (nested dicts compared by key)."""
    missing = {}
    for key, value in wanted.items():
        if isinstance(value, dict) and isinstance(plan.get(key), dict):
            if inner := _within(value, plan[key]):
                missing[key] = inner
        elif plan.get(key) != value:
            missing[key] = (value, plan.get(key))
    return missing


@pytest.mark.parametrize("name", list(A1111_TEXTS))
def test_an_a1111_text_runs_with_its_settings_and_keeps_its_unknown_labels(
    http: httpx.Client, name: str
) -> None:
    text = A1111_TEXTS[name]
    _, plan = _sdapi(http, "txt2img", {"infotext": text})
    assert not _within(A1111_WANTED[name], plan), (_within(A1111_WANTED[name], plan), plan)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    image = base64.b64encode(buffer.getvalue()).decode()
    answer = http.post("/sdapi/v1/png-info", json={"image": image})
    assert answer.status_code == 200, answer.text
    assert answer.json()["info"] == text
    labels = answer.json()["parameters"]
    for key, value in _PARAM.findall(text.rsplit("\n", 1)[-1]):
        if not _SIZE.match(value):
            shown = json.loads(value) if value.startswith('"') else value
            assert labels.get(key) == shown, (key, labels.get(key))


def test_an_img2img_text_sent_to_txt2img_runs_no_hires_pass(http: httpx.Client) -> None:
    """A1111's paste turns the hires fix on for a denoising strength with a hires label; an
    img2img picture's text has the strength alone."""
    text = (
        "x\nSteps: 2, Sampler: Euler, CFG scale: 5, Seed: 3, Size: 64x64, Denoising strength: 0.5"
    )
    _, plan = _sdapi(http, "txt2img", {"infotext": text})
    assert plan["hires"] is None and (plan["width"], plan["steps"]) == (64, 2)
    _, plan = _sdapi(http, "txt2img", {"infotext": text + ", Hires upscaler: Latent"})
    assert plan["hires"] is not None and plan["hires"]["strength"] == 0.5


SETTINGS = "Steps: 2, Sampler: Euler, Seed: 1, Size: 64x64"


@pytest.mark.parametrize(
    ("route", "labels", "says"),
    [
        ("txt2img", "Steps: 0, Seed: 1, Size: 64x64", "Steps: '0': must be an integer between 1"),
        ("img2img", "Steps: 2, Seed: -5, Size: 64x64", "Seed: '-5': must be -1 (random) or"),
        ("txt2img", "Steps: 2, Seed: 1, Size: 10x64", "Size: '10x64': must be a whole number"),
        ("txt2img", f"{SETTINGS}, Batch size: 1000", "Batch size: '1000': must be an integer"),
        ("txt2img", f"{SETTINGS}, Schedule type: NoSuch", "Schedule type: 'NoSuch': Scheduler"),
        (
            "txt2img",
            f"{SETTINGS}, Denoising strength: 0.5, Hires resize: 99999x64",
            "Hires resize: '99999x64': must be an integer multiple of 8",
        ),
        (
            "txt2img",
            f"{SETTINGS}, Denoising strength: 0.5, Hires upscale: 2, Hires sampler: NoSuch",
            "Hires sampler: 'NoSuch': Sampler not found",
        ),
    ],
)
def test_a_value_of_the_text_that_a_later_check_refuses_names_infotext_and_its_label(
    http: httpx.Client, route: str, labels: str, says: str
) -> None:
    """The client sent no ``steps``: the 422 names the text and the label it came from."""
    images = {"init_images": [base64.b64encode(_png(INIT)).decode()]} if route == "img2img" else {}
    refused = http.post(f"/sdapi/v1/{route}", json={"infotext": f"x\n{labels}", **images})
    assert refused.status_code == 422, refused.text
    [detail] = refused.json()["detail"]
    assert detail["loc"] == ["body", "infotext"], detail
    assert detail["msg"].startswith(says), detail
    # A field the request sends itself is still named as sent.
    sent = http.post(
        f"/sdapi/v1/{route}", json={"infotext": f"x\n{SETTINGS}", "steps": 0, **images}
    )
    assert sent.status_code == 422 and sent.json()["detail"][0]["loc"] == ["body", "steps"]
