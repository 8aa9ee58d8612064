"""Every AUTOMATIC1111 route Impasto answers, through the real ``webuiapi`` client where it has
a method and raw requests elsewhere, against a daemon with LoRAs, VAEs, embeddings and styles
installed. Shapes are checked against A1111's response models (modules/api/models.py)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import webuiapi
from PIL import Image, PngImagePlugin

from impasto.api.compat.a1111_defaults import A1111_DEFAULT_OPTIONS
from impasto.api.compat.a1111_infotext import infotext_labels
from impasto.formats.png import parse_a1111_parameters
from tests.harness import Daemon

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"
STYLES = '[cinematic]\nprompt = "cinematic still of {prompt}"\nnegative_prompt = "cartoon"\n'
OPT = type(None)

# A1111's response models: field -> the JSON types it may hold.
SD_MODEL = {"title": str, "model_name": str, "hash": (str, OPT), "sha256": (str, OPT)}
SD_MODEL |= {"filename": str, "config": (str, OPT)}
SD_VAE = {"model_name": str, "filename": str}
LORA = {"name": str, "alias": str, "path": str, "metadata": dict}
EMBEDDING = {"step": (int, OPT), "sd_checkpoint": (str, OPT), "sd_checkpoint_name": (str, OPT)}
EMBEDDING |= {"shape": int, "vectors": int}
STYLE = {"name": str, "prompt": (str, OPT), "negative_prompt": (str, OPT)}
SAMPLER = {"name": str, "aliases": list, "options": dict}
SCHEDULER = {"name": str, "label": str, "aliases": (list, OPT), "default_rho": (float, int, OPT)}
SCHEDULER |= {"need_inner_model": (bool, OPT)}
PROGRESS = {"progress": (float, int), "eta_relative": (float, int), "state": dict}
PROGRESS |= {"current_image": (str, OPT), "textinfo": (str, OPT)}
STATE = {"skipped": bool, "interrupted": bool, "job": str, "job_count": int}
STATE |= {"job_timestamp": str, "job_no": int, "sampling_step": int, "sampling_steps": int}
MEMORY = {"ram": dict, "cuda": dict}
SCRIPTS = {"txt2img": list, "img2img": list}
PNG_INFO = {"info": str, "items": dict, "parameters": dict}


def assert_shape(value: Any, model: dict[str, Any]) -> None:
    """``value`` is an object with every field of ``model``, each of an allowed type."""
    assert isinstance(value, dict), value
    for field, kinds in model.items():
        assert field in value, f"{field} missing from {sorted(value)}"
        assert isinstance(value[field], kinds), (field, value[field])


def assert_list_of(value: Any, model: dict[str, Any], *, empty: bool = False) -> None:
    assert isinstance(value, list), value  # not an error dict
    assert empty or value, "expected installed items"
    for item in value:
        assert_shape(item, model)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("a1111-routes")
    models = root / "models"
    shutil.copytree(ADAPTERS, models)
    running = Daemon(root, models_dir=str(models), preview_every=1)
    running.data_dir.mkdir(parents=True)
    (running.data_dir / "styles.toml").write_text(STYLES)
    running.start().wait_worker_ready()
    yield running
    running.stop()


@pytest.fixture
def api(daemon: Daemon) -> webuiapi.WebUIApi:
    client = webuiapi.WebUIApi(baseurl=f"{daemon.url}/sdapi/v1", steps=3)
    client.set_options({"sd_model_checkpoint": "sd-tiny"})
    return client


@pytest.fixture
def http(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


def _parameters(text: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", text)
    return info


def _b64_png(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _image(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_webuiapi_listings_return_installed_things(api: webuiapi.WebUIApi, daemon: Daemon) -> None:
    assert_list_of(api.get_sd_models(), SD_MODEL)
    loras = api.get_loras()
    assert_list_of(loras, LORA)
    assert {lora["name"] for lora in loras} == {"tiny-kohya", "tiny-peft"}
    # Relative to the models folder: no local path leaves the daemon.
    models = Path(daemon.settings["models_dir"])
    assert {lora["path"] for lora in loras} == {
        "loras/tiny-kohya.safetensors",
        "loras/tiny-peft.safetensors",
    }
    assert all((models / lora["path"]).is_file() for lora in loras)
    vaes = api.get_sd_vae()
    assert_list_of(vaes, SD_VAE)
    assert [vae["model_name"] for vae in vaes] == ["sd-tiny-vae-alt"]
    assert [vae["filename"] for vae in vaes] == ["vae/sd-tiny-vae-alt"]
    assert {m["filename"] for m in api.get_sd_models()} >= {"sd-tiny", "sdxl-tiny"}
    embeddings = api.get_embeddings()
    assert_shape(embeddings, {"loaded": dict, "skipped": dict})
    assert set(embeddings["loaded"]) == {"tiny-a1111", "tiny-diffusers"}
    for item in embeddings["loaded"].values():
        assert_shape(item, EMBEDDING)
        assert item["shape"] > 0 and item["vectors"] >= 1
    # Made for sd-tiny (32 wide): A1111 lists them as skipped for a model they do not fit.
    api.set_options({"sd_model_checkpoint": "impasto-shapes"})
    try:
        other = api.get_embeddings()
    finally:
        api.set_options({"sd_model_checkpoint": "sd-tiny"})
    assert other["loaded"] == {} and set(other["skipped"]) == {"tiny-a1111", "tiny-diffusers"}
    styles = api.get_prompt_styles()
    assert_list_of(styles, STYLE)
    assert styles == [
        {"name": "cinematic", "prompt": "cinematic still of {prompt}", "negative_prompt": "cartoon"}
    ]
    assert_list_of(api.get_samplers(), SAMPLER)
    assert_list_of(api.get_schedulers(), SCHEDULER)
    modes = api.get_latent_upscale_modes()
    assert_list_of(modes, {"name": str})
    assert {"Latent", "Latent (bicubic antialiased)", "Latent (nearest-exact)"} <= {
        m["name"] for m in modes
    }
    for empty in (api.get_hypernetworks, api.get_face_restorers, api.get_realesrgan_models):
        assert empty() == []
    assert_shape(api.get_scripts(), SCRIPTS)


def test_memory_reports_real_ram(api: webuiapi.WebUIApi) -> None:
    memory = api.get_memory()
    assert_shape(memory, MEMORY)
    total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert memory["ram"]["total"] == total
    assert memory["ram"]["free"] + memory["ram"]["used"] == total and memory["ram"]["used"] > 0
    assert memory["cuda"] == {"error": "unavailable"} or "system" in memory["cuda"]


def test_cmd_flags_name_the_daemons_settings(api: webuiapi.WebUIApi, daemon: Daemon) -> None:
    flags = api.get_cmd_flags()
    assert flags["port"] == daemon.port and flags["api"] is True
    assert flags["api_server_stop"] is False and flags["api_auth"] is None
    # Folders relative to the models folder: no local path leaves the daemon.
    assert (flags["ckpt_dir"], flags["lora_dir"], flags["vae_dir"]) == (".", "loras", "vae")
    assert flags["embeddings_dir"] == "embeddings"


def test_options_start_from_a1111s_defaults_and_keep_unknown_keys(api: webuiapi.WebUIApi) -> None:
    options = api.get_options()
    assert set(A1111_DEFAULT_OPTIONS) <= set(options)
    assert options["send_seed"] is True and options["samples_format"] == "png"
    assert options["CLIP_stop_at_last_layers"] == 1 and options["sd_vae"] == "Automatic"
    assert options["sd_model_checkpoint"] == "sd-tiny"
    assert options["show_progress_every_n_steps"] == 1  # the daemon's preview_every
    assert api.set_options({"my_extension_option": [1, "two"], "jpeg_quality": 95}) is None
    again = api.get_options()
    assert again["my_extension_option"] == [1, "two"] and again["jpeg_quality"] == 95


def test_refresh_and_checkpoint_actions_answer_like_a1111(
    api: webuiapi.WebUIApi, http: httpx.Client
) -> None:
    assert api.refresh_checkpoints() is None
    for route in ("refresh-vae", "refresh-embeddings", "refresh-loras"):
        answer = http.post(f"/sdapi/v1/{route}")
        assert (answer.status_code, answer.json()) == (200, None), route
    assert http.post("/sdapi/v1/unload-checkpoint").json() == {}
    _wait_loaded(http, [])
    assert http.post("/sdapi/v1/reload-checkpoint").json() == {}
    _wait_loaded(http, ["sd-tiny"])
    assert http.post("/sdapi/v1/unload-checkpoint").json() == {}
    _wait_loaded(http, [])


def _wait_loaded(http: httpx.Client, wanted: list[str], timeout: float = 60.0) -> None:
    """Workers report what they hold a moment after they change it."""
    deadline = time.monotonic() + timeout
    while True:
        loaded = [item["model"] for item in http.get("/api/v1/models/loaded").json()]
        if loaded == wanted or time.monotonic() > deadline:
            assert loaded == wanted
            return
        time.sleep(0.1)


def test_missing_routes_and_methods_answer_as_fastapi(http: httpx.Client) -> None:
    for method, path, status, detail in (
        ("GET", "/sdapi/v1/no-such-route", 404, "Not Found"),
        ("POST", "/sdapi/v1/no/such/route", 404, "Not Found"),
        ("POST", "/sdapi/v1/sd-models", 405, "Method Not Allowed"),
        ("GET", "/sdapi/v1/txt2img", 405, "Method Not Allowed"),
        ("POST", "/sdapi/v1/server-kill", 404, "Not Found"),  # off: as without --api-server-stop
        ("POST", "/sdapi/v1/server-restart", 404, "Not Found"),
    ):
        answer = http.request(method, path)
        assert (answer.status_code, answer.json()) == (status, {"detail": detail}), path


def test_features_impasto_lacks_answer_in_a1111s_error_shape(
    api: webuiapi.WebUIApi, http: httpx.Client
) -> None:
    with pytest.raises(RuntimeError) as interrogate:
        api.interrogate(Image.new("RGB", (64, 64)))
    assert interrogate.value.args[0] == 501 and "captioning" in interrogate.value.args[1]
    image = _b64_png(Image.new("RGB", (64, 64)))
    checks = [
        ("/sdapi/v1/interrogate", {"image": image, "model": "clip"}, 501, "captioning model"),
        ("/sdapi/v1/interrogate", {"image": image, "model": "blip9"}, 404, "Model not found"),
        ("/sdapi/v1/interrogate", {"model": "clip"}, 404, "Image not found"),
        ("/sdapi/v1/create/embedding", {"name": "x"}, 501, "training"),
        ("/sdapi/v1/create/hypernetwork", {"name": "x"}, 501, "training"),
        ("/sdapi/v1/train/embedding", {}, 501, "training"),
        ("/sdapi/v1/train/hypernetwork", {}, 501, "training"),
    ]
    for path, body, status, words in checks:
        answer = http.post(path, json=body)
        assert answer.status_code == status, (path, answer.text)
        error = answer.json()
        assert set(error) == {"error", "detail", "body", "errors"}
        assert error["error"] == "HTTPException" and words in error["detail"]
        assert error["errors"] == f"{status}: {error['detail']}"


def test_unknown_sampler_is_a1111s_404(http: httpx.Client) -> None:
    answer = http.post("/sdapi/v1/txt2img", json={"prompt": "x", "sampler_name": "DEIS"})
    assert answer.status_code == 404
    assert answer.json()["detail"].startswith("Sampler not found")


def test_a_size_out_of_range_is_refused_with_a1111s_rule(http: httpx.Client) -> None:
    """A1111 takes any size and rounds it down to 8 (70 draws 64), so "must be a multiple of 8"
    told an A1111 client that sent 60 the wrong rule; the message now says what is taken."""
    for field, value in (("width", 60), ("height", -8), ("width", 4096)):
        body = {"prompt": "size", "steps": 1, "width": 64, "height": 64, field: value}
        refused = http.post("/sdapi/v1/txt2img", json=body)
        assert refused.status_code == 422, refused.text
        (item,) = refused.json()["detail"]
        assert item["loc"] == ["body", field]
        assert "from 64 to 2048" in item["msg"] and "rounded down" in item["msg"], item


def test_payloads_as_a1111_clients_send_them(http: httpx.Client) -> None:
    long_prompt = ", ".join(f"detail {i}" for i in range(400))  # ~4,400 chars, 12+ chunks
    body = {
        "prompt": long_prompt,
        "negative_prompt": "blurry",
        "width": 70,  # not multiples of 8: A1111 makes the latent's size, 64x72
        "height": 75,
        "steps": "3",
        "seed": 12.0,
        "cfg_scale": "6.5",
        "batch_size": True,  # pydantic v1 reads true as 1
        "n_iter": 1,
        "restore_faces": "false",
        "tiling": 0,
        "do_not_save_samples": True,  # fields Impasto does not know are ignored
        "eta": 0,
        "s_churn": 0.0,
        "script_args": [],
        "alwayson_scripts": {},
        "send_images": "true",
    }
    answer = http.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert len(result["images"]) == 1
    image = _image(result["images"][0])
    assert image.size == (64, 72)
    params = parse_a1111_parameters(image.info["parameters"])
    assert params["prompt"] == long_prompt
    assert (params["seed"], params["steps"], params["cfg_scale"]) == (12, 3, 6.5)
    refused = http.post("/sdapi/v1/txt2img", json={**body, "steps": "three"})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "steps"]


@pytest.mark.parametrize("path", ["/sdapi/v1/txt2img", "/sdapi/v1/options", "/sdapi/v1/png-info"])
def test_a_body_that_is_not_json_is_fastapis_422(http: httpx.Client, path: str) -> None:
    """FastAPI (A1111's server) answers a body it cannot decode with a 422 json_invalid, for a
    free-form body and a typed one alike."""
    answer = http.post(path, content=b"{bad", headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    (item,) = answer.json()["detail"]
    assert (item["loc"], item["type"]) == (["body"], "json_invalid")
    assert "JSON" in item["msg"]


def _inpaint_body(size: tuple[int, int], box: tuple[int, int, int, int]) -> dict[str, Any]:
    """A 64x64 img2img of a red picture of ``size`` with ``box`` masked, as A1111 takes it."""
    init = Image.new("RGB", size, (200, 30, 30))
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return {
        "init_images": [_b64_png(init)],
        "mask": _b64_png(mask),
        "prompt": "a blue door",
        "seed": 4,
        "steps": 3,
        "width": 64,
        "height": 64,
        "denoising_strength": 0.9,
        "mask_blur": 0,
    }


def test_img2img_as_webuis_own_clients_send_it(http: httpx.Client) -> None:
    body = {
        **_inpaint_body((64, 64), (32, 0, 64, 64)),
        "inpainting_fill": 1,
        "inpaint_full_res": False,
        "inpaint_full_res_padding": 32,
        "inpainting_mask_invert": False,  # what A1111's clients send; once refused
        "resize_mode": 0,
        "include_init_images": "false",
    }
    answer = http.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    image = _image(answer.json()["images"][0]).convert("RGB")
    assert {c for _, c in image.crop((0, 0, 30, 64)).getcolors() or []} == {(200, 30, 30)}
    inverted = http.post("/sdapi/v1/img2img", json={**body, "inpainting_mask_invert": True})
    flipped = _image(inverted.json()["images"][0]).convert("RGB")
    assert {c for _, c in flipped.crop((34, 0, 64, 64)).getcolors() or []} == {(200, 30, 30)}


def test_img2img_only_masked_keeps_the_image_size_and_repaints_the_masked_patch(
    http: httpx.Client,
) -> None:
    """``inpaint_full_res`` (A1111's API default): the crop around the mask is inpainted at
    width x height and pasted back into the init image, which keeps its own size."""
    box = (100, 30, 130, 60)
    body = {**_inpaint_body((160, 96), box), "inpaint_full_res_padding": 8, "inpainting_fill": 2}
    answer = http.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    image = _image(answer.json()["images"][0]).convert("RGB")
    assert image.size == (160, 96)
    inside = np.zeros((96, 160), bool)
    inside[box[1] : box[3], box[0] : box[2]] = True
    pixels = np.asarray(image)
    assert (pixels[~inside] == (200, 30, 30)).all()
    assert np.abs(pixels[inside].astype(int) - (200, 30, 30)).mean() > 10
    # "Whole picture" scales the image to width x height, as before.
    whole = http.post("/sdapi/v1/img2img", json={**body, "inpaint_full_res": 0})
    assert _image(whole.json()["images"][0]).size == (64, 64)
    refused = http.post("/sdapi/v1/img2img", json={**body, "inpainting_fill": 4})
    assert refused.status_code == 422
    assert "inpainting_fill" in refused.text and "latent nothing" in refused.text.replace("_", " ")


def test_every_hires_field_reaches_the_plan(http: httpx.Client) -> None:
    body = {
        "prompt": "hires-mapping a red cat",
        "negative_prompt": "dog",
        "seed": 5,
        "steps": 2,
        "width": 64,
        "height": 64,
        "enable_hr": True,
        "hr_scale": 1.5,
        "hr_upscaler": "Latent (nearest-exact)",
        "hr_second_pass_steps": 3,
        "denoising_strength": 0.45,
        "hr_sampler_name": "DPM++ 2M",
        "hr_prompt": "a red cat, detailed",
        "hr_negative_prompt": "blur",
        "hr_cfg": 4.5,
        "hr_resize_x": 0,
        "hr_resize_y": 0,
    }
    answer = http.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    assert _image(answer.json()["images"][0]).size == (96, 96)
    job = http.get("/api/v1/history", params={"q": "hires-mapping"}).json()["items"][0]
    hires = job["plan"]["hires"]
    assert (hires["width"], hires["height"], hires["upscaler"]) == (96, 96, "latent-nearest-exact")
    assert (hires["steps"], hires["strength"], hires["sampler"]) == (3, 0.45, "dpmpp_2m")
    assert (hires["prompt"], hires["negative_prompt"]) == ("a red cat, detailed", "blur")
    assert hires["cfg_scale"] == 4.5
    # info's extra_generation_params carries what the PNG adds, typed as A1111's.
    extra = json.loads(answer.json()["info"])["extra_generation_params"]
    assert (extra["Hires upscale"], extra["Hires steps"]) == (1.5, 3), extra
    assert extra["Hires upscaler"] == "Latent (nearest-exact)" and extra["Schedule type"]
    assert "Denoising strength" not in extra  # a field of its own in info
    sized = http.post("/sdapi/v1/txt2img", json={**body, "hr_resize_x": 130, "hr_resize_y": 100})
    assert _image(sized.json()["images"][0]).size == (128, 96)  # rounded down to 8, as A1111


# A1111 1.9+: the hires pass's scheduler is hr_scheduler, else the first pass's scheduler;
# "Automatic" is the hires sampler's own (Karras for DPM++ 2M, Uniform for Euler).
HIRES_SCHEDULES = [
    ({"sampler_name": "Euler"}, None, "uniform"),
    ({"sampler_name": "Euler", "hr_sampler_name": "DPM++ 2M"}, "dpmpp_2m", "karras"),
    (
        {"sampler_name": "Euler", "scheduler": "Exponential", "hr_sampler_name": "DPM++ 2M"},
        "dpmpp_2m",
        "exponential",
    ),
    (
        {
            "sampler_name": "Euler",
            "scheduler": "Exponential",
            "hr_sampler_name": "DPM++ 2M",
            "hr_scheduler": "Automatic",
        },
        "dpmpp_2m",
        "karras",
    ),
    ({"sampler_name": "DPM++ 2M", "hr_scheduler": "Uniform"}, None, "uniform"),
    (
        {
            "sampler_name": "DPM++ 2M",
            "scheduler": "Exponential",
            "hr_sampler_name": "Use same sampler",
            "hr_scheduler": "Use same scheduler",
        },
        None,
        "exponential",
    ),
    ({"sampler_name": "Euler", "hr_sampler_name": "DDIM"}, "ddim", "default"),
]


@pytest.mark.parametrize(("fields", "sampler", "schedule"), HIRES_SCHEDULES)
def test_hires_scheduler_follows_a1111(
    http: httpx.Client, fields: dict[str, str], sampler: str | None, schedule: str
) -> None:
    tag = f"hires-schedule {sorted(fields.items())}"
    body = {"prompt": tag, "steps": 1, "width": 64, "height": 64, "enable_hr": True, **fields}
    answer = http.post("/sdapi/v1/txt2img", json={**body, "hr_scale": 1.25})
    assert answer.status_code == 200, answer.text
    job = http.get("/api/v1/history", params={"q": tag}).json()["items"][0]
    hires = job["plan"]["hires"]
    assert (hires["sampler"], hires["schedule"]) == (sampler, schedule)
    info = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
    differs = schedule != job["plan"]["schedule"]
    written = info["extra"].get("Hires schedule type")
    assert written == (schedule.title() if differs else None), info


def test_a_bad_hires_scheduler_is_named(http: httpx.Client) -> None:
    body = {"prompt": "x", "steps": 1, "width": 64, "height": 64, "enable_hr": True}
    unknown = http.post("/sdapi/v1/txt2img", json={**body, "hr_scheduler": "Sideways"})
    assert unknown.status_code == 422 and "hr_scheduler" in unknown.text, unknown.text
    assert "Sideways" in unknown.text
    lacking = http.post(
        "/sdapi/v1/txt2img", json={**body, "hr_sampler_name": "DDIM", "hr_scheduler": "Karras"}
    )
    assert lacking.status_code == 422 and "ddim supports" in lacking.text, lacking.text
    # Named as the client sent it, not as the native hires.schedule; so are the other hires
    # fields that come from one A1111 field each.
    assert lacking.json()["detail"][0]["loc"] == ["body", "hr_scheduler"], lacking.text
    steps = http.post("/sdapi/v1/txt2img", json={**body, "hr_second_pass_steps": 999})
    assert steps.json()["detail"][0]["loc"] == ["body", "hr_second_pass_steps"], steps.text


def test_a_hires_checkpoint_other_than_the_model_is_refused(http: httpx.Client) -> None:
    """A1111 1.8+'s hr_checkpoint_name: the same model runs, another is a 422, not ignored."""
    current = http.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    body = {"prompt": "hr-checkpoint x", "steps": 1, "width": 64, "height": 64, "enable_hr": True}
    for same in ("Use same checkpoint", "", current):
        answer = http.post("/sdapi/v1/txt2img", json={**body, "hr_checkpoint_name": same})
        assert answer.status_code == 200, (same, answer.text)
    other = "sdxl-tiny" if current != "sdxl-tiny" else "sd-tiny"
    before = len(http.get("/api/v1/history", params={"q": "hr-checkpoint"}).json()["items"])
    refused = http.post("/sdapi/v1/txt2img", json={**body, "hr_checkpoint_name": other})
    assert refused.status_code == 422, refused.text
    assert "hr_checkpoint_name" in refused.text and other in refused.text
    after = len(http.get("/api/v1/history", params={"q": "hr-checkpoint"}).json()["items"])
    assert after == before  # nothing was queued


def test_refiner_checkpoint_and_switch_reach_the_plan_and_the_infotext(
    http: httpx.Client,
) -> None:
    body = {
        "prompt": "a1111-refiner a tiny house",
        "seed": 5,
        "steps": 4,
        "width": 64,
        "height": 64,
        "sampler_name": "Euler",
        "override_settings": {"sd_model_checkpoint": "sdxl-tiny"},
    }
    plain = http.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "None"})
    assert plain.status_code == 200, plain.text
    refined = http.post(
        "/sdapi/v1/txt2img",
        # A1111 clients send the checkpoint's title: file name and hash.
        json={
            **body,
            "refiner_checkpoint": "sdxl-tiny-refiner.safetensors [0123456789]",
            "refiner_switch_at": 0.5,
        },
    )
    assert refined.status_code == 200, refined.text
    jobs = http.get("/api/v1/history", params={"q": "a1111-refiner"}).json()["items"]
    plans = [(job["plan"].get("refiner"), job["plan"]["refiner_switch"]) for job in jobs]
    assert plans == [("sdxl-tiny-refiner", 0.5), (None, 0.8)]  # newest first
    images = [_image(answer.json()["images"][0]) for answer in (plain, refined)]
    assert images[0].tobytes() != images[1].tobytes()
    info = parse_a1111_parameters(images[1].info["parameters"])["extra"]
    assert (info["Refiner"], info["Refiner switch at"]) == ("sdxl-tiny-refiner", "0.5")
    assert "Refiner" not in parse_a1111_parameters(images[0].info["parameters"])["extra"]
    unknown = http.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "nope"})
    assert unknown.status_code == 422 and "refiner_checkpoint" in unknown.text, unknown.text
    # Installed but no refiner: named as sent, not as the native "refiner".
    not_one = http.post("/sdapi/v1/txt2img", json={**body, "refiner_checkpoint": "sd-tiny"})
    assert not_one.status_code == 422, not_one.text
    (item,) = not_one.json()["detail"]
    assert item["loc"] == ["body", "refiner_checkpoint"] and "not an SDXL refiner" in item["msg"]
    bad_switch = http.post(
        "/sdapi/v1/txt2img",
        json={**body, "refiner_checkpoint": "sdxl-tiny-refiner", "refiner_switch_at": 1.5},
    )
    assert bad_switch.status_code == 422 and "refiner_switch_at" in bad_switch.text


def test_an_inpaintings_png_says_its_area_and_masked_content_as_a1111_writes_them(
    http: httpx.Client,
) -> None:
    """A1111 writes Inpaint area and Masked area padding for only masked, and Masked content
    unless original; read back with png-info and infotext they set the same fields."""
    body = {
        **_inpaint_body((96, 96), (30, 30, 60, 60)),
        "inpaint_full_res": True,
        "inpaint_full_res_padding": 8,
        "inpainting_fill": 0,
        "inpainting_mask_invert": 1,
        "mask_blur": 4,
    }
    answer = http.post("/sdapi/v1/img2img", json=body)
    assert answer.status_code == 200, answer.text
    text = _image(answer.json()["images"][0]).info["parameters"]
    extra = parse_a1111_parameters(text)["extra"]
    wanted = {"Inpaint area": "Only masked", "Masked area padding": "8", "Masked content": "fill"}
    assert {key: extra.get(key) for key in wanted} == wanted, text
    info = json.loads(answer.json()["info"])["extra_generation_params"]
    assert info["Mask mode"] == "Inpaint not masked" and info["Inpaint area"] == "Only masked"
    whole = {**body, "inpaint_full_res": False, "inpainting_fill": 1}
    plain = parse_a1111_parameters(
        _image(http.post("/sdapi/v1/img2img", json=whole).json()["images"][0]).info["parameters"]
    )["extra"]
    assert not {"Inpaint area", "Masked area padding", "Masked content"} & set(plain)


def test_a_refiner_with_a_mask_is_refused_before_anything_is_queued(
    http: httpx.Client, daemon: Daemon
) -> None:
    """Inpainting cannot run a refiner (the mask's hooks belong to the base run): a 422 naming
    ``refiner_checkpoint`` (``script_args`` for a script) for the request, the loopback script
    and an X/Y/Z refiner axis alike; the pictures they sent are not kept."""
    body = {
        **_inpaint_body((64, 64), (16, 16, 48, 48)),
        "prompt": "refiner-masked x",
        "steps": 2,
        "override_settings": {"sd_model_checkpoint": "sdxl-tiny"},
        "refiner_checkpoint": "sdxl-tiny-refiner",
    }
    before = len(http.get("/api/v1/history", params={"q": "refiner-masked"}).json()["items"])
    uploads = set((daemon.data_dir / "uploads").glob("*.png"))
    xyz_body = {**body, "script_name": "x/y/z plot"}
    del xyz_body["refiner_checkpoint"]
    xyz_body["script_args"] = ["Refiner checkpoint", "None, sdxl-tiny-refiner", []]
    loopback = {**body, "script_name": "loopback", "script_args": [2, 0.5, "Linear", "None"]}
    for request in (body, loopback, xyz_body):
        refused = http.post("/sdapi/v1/img2img", json=request)
        assert refused.status_code == 422, refused.text
        assert "refiner" in refused.text and "mask" in refused.text, refused.text
        # Named as the client sent it, never the native "refiner" it did not send.
        assert refused.json()["detail"][0]["loc"][1] in ("refiner_checkpoint", "script_args")
    after = len(http.get("/api/v1/history", params={"q": "refiner-masked"}).json()["items"])
    assert after == before
    assert set((daemon.data_dir / "uploads").glob("*.png")) == uploads
    unmasked = {k: v for k, v in body.items() if k != "mask"}
    assert http.post("/sdapi/v1/img2img", json=unmasked).status_code == 200


def test_variation_seed_numbers_each_image_and_says_so(http: httpx.Client) -> None:
    body = {"prompt": "a lantern", "seed": 5, "steps": 2, "width": 64, "height": 64}
    varied = {**body, "subseed": 7, "subseed_strength": 0.3, "batch_size": 2, "n_iter": 2}
    answer = http.post("/sdapi/v1/txt2img", json=varied)
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    assert info["all_seeds"] == [5, 6, 7, 8] and info["all_subseeds"] == [7, 8, 9, 10]
    assert info["subseed_strength"] == 0.3
    for subseed, text in zip(info["all_subseeds"], info["infotexts"], strict=True):
        assert f"Variation seed: {subseed}, Variation seed strength: 0.3" in text, text
    plain = http.post("/sdapi/v1/txt2img", json=body).json()
    first = _image(answer.json()["images"][0]).tobytes()
    assert first != _image(plain["images"][0]).tobytes()
    assert "Variation seed" not in json.loads(plain["info"])["infotexts"][0]


def _latest_plan(http: httpx.Client, query: str) -> dict[str, Any]:
    return http.get("/api/v1/history", params={"q": query}).json()["items"][0]["plan"]


def _generated(
    http: httpx.Client, route: str, body: dict[str, Any], query: str, *fields: str
) -> tuple[bytes, tuple[Any, ...], dict[str, Any]]:
    """An A1111 generation's picture (its pixels), the ``fields`` of its job's plan (found by
    ``query``) and the extra labels its PNG writes."""
    answer = http.post(f"/sdapi/v1/{route}", json=body)
    assert answer.status_code == 200, (body, answer.text)
    image = _image(answer.json()["images"][0])
    written = parse_a1111_parameters(image.info["parameters"])["extra"]
    plan = _latest_plan(http, query)
    return image.convert("RGB").tobytes(), tuple(plan[name] for name in fields), written


def test_built_in_alwayson_scripts_leave_the_request_fields_alone(http: httpx.Client) -> None:
    """A1111 1.6+'s Seed, Sampler and Refiner scripts set up the browser UI only: through the
    API their args change nothing (a client sending /script-info's defaults keeps its own
    settings), while scripts that are not there, or are selectable, are refused."""
    body = {
        "prompt": "alwayson a tiny house",
        "seed": 1,
        "steps": 3,
        "sampler_name": "DPM++ 2M",
        "scheduler": "Exponential",
        "width": 64,
        "height": 64,
        "override_settings": {"sd_model_checkpoint": "sdxl-tiny"},
        "refiner_checkpoint": "sdxl-tiny-refiner",
        "refiner_switch_at": 0.6,
        "alwayson_scripts": {
            "Seed": {"args": [21, True, 40, 0.25, 0, 0]},
            "sampler": {"args": [20, "Euler a", "Automatic"]},
            "Refiner": {"args": [False, None, 0.8]},
        },
    }
    answer = http.post("/sdapi/v1/txt2img", json=body)
    assert answer.status_code == 200, answer.text
    plan = _latest_plan(http, "alwayson")
    assert (plan["seed"], plan.get("subseed_strength") or 0) == (1, 0)
    assert (plan["steps"], plan["sampler"], plan["schedule"]) == (3, "dpmpp_2m", "exponential")
    assert (plan["refiner"], plan["refiner_switch"]) == ("sdxl-tiny-refiner", 0.6)
    # A script Impasto does not have is refused, as A1111 refuses one it has not installed.
    missing = {**body, "alwayson_scripts": {"controlnet": {"args": [{"enabled": True}]}}}
    refused = http.post("/sdapi/v1/txt2img", json=missing)
    assert refused.status_code == 422, refused.text
    assert "always on script controlnet not found" in refused.text
    assert "alwayson_scripts" in refused.text
    selectable = {**body, "alwayson_scripts": {"X/Y/Z plot": {"args": []}}}
    refused = http.post("/sdapi/v1/txt2img", json=selectable)
    assert refused.status_code == 422, refused.text
    assert "Cannot have a selectable script in the always on scripts params" in refused.text
    bad_args = {**body, "alwayson_scripts": {"Seed": {"args": "soon"}}}
    assert http.post("/sdapi/v1/txt2img", json=bad_args).status_code == 422


INFOTEXT = (
    "infotext a red barn\n"
    "Negative prompt: fog\n"
    "Steps: 4, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 5.5, Seed: 77, "
    "Size: 64x80, Variation seed: 9, Variation seed strength: 0.2, Denoising strength: 0.4, "
    "Hires upscale: 1.5, Hires steps: 2, Hires upscaler: Latent, Clip skip: 2, Model: sdxl-tiny"
)


def test_infotext_fills_the_fields_the_request_leaves_unset(http: httpx.Client) -> None:
    """A1111 1.7+'s ``infotext``: the text's settings apply, the request's own fields win."""
    answer = http.post("/sdapi/v1/txt2img", json={"infotext": INFOTEXT, "seed": 5})
    assert answer.status_code == 200, answer.text
    plan = _latest_plan(http, "infotext a red barn")
    assert plan["prompt"] == "infotext a red barn" and plan["negative_prompt"] == "fog"
    assert (plan["steps"], plan["sampler"], plan["schedule"]) == (4, "dpmpp_2m", "karras")
    assert (plan["cfg_scale"], plan["seed"], plan["width"], plan["height"]) == (5.5, 5, 64, 80)
    assert (plan["subseed"], plan["subseed_strength"]) == (9, 0.2)
    # As A1111 echoes the request after the text was applied: Clip skip is an override setting
    # (sd-tiny's text encoder has no earlier layers to skip to, so the plan keeps 1).
    echoed = answer.json()["parameters"]
    assert echoed["override_settings"] == {"CLIP_stop_at_last_layers": 2}
    assert (echoed["steps"], echoed["seed"], echoed["enable_hr"]) == (4, 5, True)
    hires = plan["hires"]
    assert (hires["width"], hires["height"], hires["steps"], hires["strength"]) == (96, 120, 2, 0.4)
    assert json.loads(answer.json()["info"])["seed"] == 5
    # A1111's default keeps the model ("Do not change selected model when reading generation
    # parameters"); with that option off the text's model is used.
    assert plan["model"] != "sdxl-tiny"
    assert http.post("/sdapi/v1/options", json={"disable_weights_auto_swap": False}).is_success
    try:
        swapped = {"infotext": INFOTEXT.replace("Clip skip: 2", "Clip skip: 1"), "steps": 1}
        assert http.post("/sdapi/v1/txt2img", json=swapped).status_code == 200
        assert _latest_plan(http, "infotext a red barn")["model"] == "sdxl-tiny"
    finally:
        http.post("/sdapi/v1/options", json={"disable_weights_auto_swap": True})
    # img2img takes the mask settings by their labels; txt2img-only labels do not apply.
    img2img = {
        "infotext": "infotext a blue barn\nSteps: 2, Sampler: Euler, CFG scale: 4, Seed: 3, "
        "Size: 64x64, Denoising strength: 0.55, Mask blur: 2, Masked content: latent noise, "
        "Inpaint area: Whole picture, Hires upscale: 2",
        "init_images": [_b64_png(Image.new("RGB", (64, 64), "white"))],
        "mask": _b64_png(Image.new("L", (64, 64), 255)),
    }
    answer = http.post("/sdapi/v1/img2img", json=img2img)
    assert answer.status_code == 200, answer.text
    plan = _latest_plan(http, "infotext a blue barn")
    assert (plan["steps"], plan["sampler"], plan["seed"], plan["strength"]) == (2, "euler", 3, 0.55)
    assert (plan["masked_content"], plan["inpaint_area"]) == ("latent_noise", "whole")
    assert plan.get("hires") is None
    # A value that does not fit names the field and the label it came from.
    bad = http.post("/sdapi/v1/txt2img", json={"infotext": "x\nSteps: many, Seed: 1, CFG scale: 7"})
    assert bad.status_code == 422, bad.text
    assert "infotext" in bad.text and "Steps" in bad.text


def test_styles_field_applies_the_styles_plugin(http: httpx.Client) -> None:
    answer = http.post(
        "/sdapi/v1/txt2img",
        json={"prompt": "a lighthouse", "styles": ["cinematic"], "steps": 2, "width": 64},
    )
    assert answer.status_code == 200, answer.text
    params = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
    assert params["prompt"] == "cinematic still of a lighthouse"
    assert params["negative_prompt"] == "cartoon"
    # As A1111's Processed: the prompt as sent, and each image's as it ran, styled.
    info = json.loads(answer.json()["info"])
    assert (info["prompt"], info["all_prompts"]) == ("a lighthouse", [params["prompt"]])
    assert (info["negative_prompt"], info["all_negative_prompts"]) == ("", ["cartoon"])
    # With the plugin off the styles would do nothing: refused on styles, not dropped.
    assert http.post("/api/v1/plugins/styles/disable").status_code == 200
    try:
        body = {"prompt": "a lighthouse", "styles": ["cinematic"], "steps": 2, "width": 64}
        refused = http.post("/sdapi/v1/txt2img", json=body)
    finally:
        assert http.post("/api/v1/plugins/styles/enable").status_code == 200
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "styles"]
    assert "plugin 'styles' is disabled" in refused.json()["detail"][0]["msg"]


def test_xyz_styles_axis_adds_each_cells_styles(http: httpx.Client) -> None:
    """A1111's X/Y/Z Styles axis: each value's styles are added to the request's own (an empty
    value adds none); an unknown style is refused naming the known ones."""
    choices = http.get("/sdapi/v1/script-info").json()
    xyz = next(s for s in choices if s["name"] == "x/y/z plot" and not s["is_img2img"])
    styles = xyz["args"][0]["choices"].index("Styles")
    nothing = [0, "", []]
    body = {"prompt": "a harbour", "seed": 2, "steps": 2, "width": 64, "height": 64}
    body["script_name"] = "x/y/z plot"
    args = [styles, "", ["", "cinematic"], *nothing, *nothing, False, True, False, False, 0]
    answer = http.post("/sdapi/v1/txt2img", json={**body, "script_args": [*args, False, False]})
    assert answer.status_code == 200, answer.text
    _, *cells = answer.json()["images"]
    written = [parse_a1111_parameters(_image(cell).info["parameters"]) for cell in cells]
    assert [w["prompt"] for w in written] == ["a harbour", "cinematic still of a harbour"]
    assert [w["negative_prompt"] for w in written] == ["", "cartoon"]
    args[2] = ["gothic"]
    refused = http.post("/sdapi/v1/txt2img", json={**body, "script_args": [*args, False, False]})
    assert refused.status_code == 422 and "cinematic" in refused.text, refused.text


def test_tiling_draws_a_seamless_picture_and_says_so(http: httpx.Client) -> None:
    """``tiling: true`` runs the wrapping graphs (tests/engine/test_seamless.py shows they
    wrap), the PNG says ``Tiling: True`` as A1111 writes it, and that text pasted back as
    ``infotext`` asks for tiling again."""
    body = {"prompt": "a brick wall texture", "steps": 2, "width": 64, "height": 64, "seed": 4}
    tiled = http.post("/sdapi/v1/txt2img", json={**body, "tiling": True})
    assert tiled.status_code == 200, tiled.text
    parameters = _image(tiled.json()["images"][0]).info["parameters"]
    assert "Tiling: True" in parameters
    assert _latest_plan(http, "a brick wall texture")["tiling"] is True
    plain = http.post("/sdapi/v1/txt2img", json={**body, "tiling": False})
    shown = [_image(r.json()["images"][0]).convert("RGB").tobytes() for r in (plain, tiled)]
    assert shown[0] != shown[1]  # the pixels: the PNGs' texts differ anyway
    assert "Tiling" not in _image(plain.json()["images"][0]).info["parameters"]
    pasted = http.post("/sdapi/v1/txt2img", json={"infotext": parameters, "prompt": "pasted tile"})
    assert pasted.status_code == 200, pasted.text
    assert _latest_plan(http, "pasted tile")["tiling"] is True
    # A size the UNet cannot divide whole would be drawn larger and cropped: refused.
    odd = http.post("/sdapi/v1/txt2img", json={**body, "tiling": True, "width": 72})
    assert odd.status_code == 422, odd.text
    assert odd.json()["detail"][0]["loc"] == ["body", "width"]


def test_sd_vae_option_picks_an_installed_vae(api: webuiapi.WebUIApi) -> None:
    plain = api.txt2img(prompt="a vase", seed=3, width=64, height=64)
    api.set_options({"sd_vae": "sd-tiny-vae-alt"})
    try:
        swapped = api.txt2img(prompt="a vase", seed=3, width=64, height=64)
        override = api.txt2img(
            prompt="a vase", seed=3, width=64, height=64, override_settings={"sd_vae": "None"}
        )
    finally:
        api.set_options({"sd_vae": "Automatic"})
    assert swapped.image.tobytes() != plain.image.tobytes()
    assert override.image.tobytes() == plain.image.tobytes()
    # info names the VAE that ran, as A1111's sd_vae_name (None: the checkpoint's own).
    assert swapped.info["sd_vae_name"] == "sd-tiny-vae-alt"
    assert plain.info["sd_vae_name"] is None and override.info["sd_vae_name"] is None
    with pytest.raises(RuntimeError) as unknown:
        api.txt2img(prompt="x", override_settings={"sd_vae": "nope.safetensors"})
    # Named as the client sent it (it said "vae", a native field the client never sent).
    where = '"loc":["body","override_settings.sd_vae"]'
    assert unknown.value.args[0] == 422 and where in unknown.value.args[1]


def test_progress_and_png_info_shapes(api: webuiapi.WebUIApi) -> None:
    progress = api.get_progress()
    assert_shape(progress, PROGRESS)
    assert_shape(progress["state"], STATE)
    result = api.txt2img(prompt="shape check", width=64, height=64)
    assert_shape(api.png_info(result.image).json, PNG_INFO)
    assert api.get_progress()["state"]["job_timestamp"] != "0"  # kept after the task


@pytest.mark.parametrize("kind", ["JPEG", "WEBP"])
def test_png_info_reads_a_jpegs_and_a_webps_exif_comment_as_a1111_saves_them(
    http: httpx.Client, kind: str
) -> None:
    """A1111 saves a JPEG's or WebP's parameters as EXIF UserComment (piexif's UNICODE, UTF-16
    big-endian); png-info reads them there. An empty image is an empty answer, as in A1111."""
    text = "a fox\nNegative prompt: blur\nSteps: 12, Sampler: Euler, CFG scale: 6, Seed: 3"
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, format=kind, exif=exif.tobytes())
    answer = http.post(
        "/sdapi/v1/png-info", json={"image": base64.b64encode(buf.getvalue()).decode()}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["info"] == text
    assert answer.json()["parameters"]["Steps"] == "12"
    empty = http.post("/sdapi/v1/png-info", json={"image": ""})
    assert empty.status_code == 200 and empty.json()["info"] == ""


def test_overrides_not_restored_afterwards_stay_as_the_options(http: httpx.Client) -> None:
    """override_settings_restore_afterwards false keeps the request's overrides as A1111's
    options (the checkpoint too) once the request is accepted; a refused one keeps nothing."""
    before = http.get("/sdapi/v1/options").json()
    other = "sd-tiny-v" if before["sd_model_checkpoint"] != "sd-tiny-v" else "sd-tiny"
    overrides = {"sd_model_checkpoint": other, "eta_noise_seed_delta": 5}
    body = {"prompt": "kept overrides", "steps": 1, "width": 64, "height": 64}
    body |= {"override_settings": overrides, "override_settings_restore_afterwards": False}
    try:
        refused = http.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "nope"})
        assert refused.status_code == 404, refused.text
        assert (
            http.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
            == (before["sd_model_checkpoint"])
        )
        assert http.post("/sdapi/v1/txt2img", json=body).status_code == 200
        after = http.get("/sdapi/v1/options").json()
        assert (after["sd_model_checkpoint"], after["eta_noise_seed_delta"]) == (other, 5)
        plain = {"prompt": "kept overrides next", "steps": 1, "width": 64, "height": 64}
        assert http.post("/sdapi/v1/txt2img", json=plain).status_code == 200
        assert _latest_plan(http, "kept overrides next")["model"] == other
    finally:
        restore = {k: before[k] for k in ("sd_model_checkpoint", "eta_noise_seed_delta")}
        assert http.post("/sdapi/v1/options", json=restore).status_code == 200


def test_a_native_job_is_a_task_of_its_own(http: httpx.Client) -> None:
    body = {"prompt": "native-task", "steps": 150, "width": 256, "height": 256}
    job = http.post("/api/v1/generate", json=body).json()["id"]
    try:
        deadline = time.monotonic() + 60
        while (state := http.get("/sdapi/v1/progress").json()["state"])["sampling_step"] < 1:
            assert time.monotonic() < deadline, "the job never ran"
            time.sleep(0.05)
        assert (state["job"], state["job_no"], state["job_count"]) == (job, 0, 1)
    finally:
        assert http.post(f"/api/v1/generate/{job}/cancel").status_code == 200
    deadline = time.monotonic() + 60
    while (idle := http.get("/sdapi/v1/progress").json()["state"])["job_count"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert idle["job_timestamp"] == state["job_timestamp"] != "0"


def test_server_stop_when_enabled(daemon_factory: type[Daemon], tmp_path: Path) -> None:
    running = daemon_factory(tmp_path / "stoppable", api_server_stop="true").start()
    with running.client() as client:
        restart = client.post("/sdapi/v1/server-restart")
        assert restart.status_code == 501  # A1111 without a launcher that restarts it
        stop = client.post("/sdapi/v1/server-stop")
        assert (stop.status_code, stop.text) == (200, "Stopping.")
    assert running.process is not None
    assert running.process.wait(timeout=30) == 0


# A1111's add_api_route list (modules/api/api.py, 1.10) and the Lora extension's two routes.
A1111_ROUTES = [
    *(("POST", p) for p in ("txt2img", "img2img", "extra-single-image", "extra-batch-images")),
    ("POST", "png-info"),
    ("GET", "progress"),
    *(("POST", p) for p in ("interrogate", "interrupt", "skip")),
    ("GET", "options"),
    ("POST", "options"),
    *(("GET", p) for p in ("cmd-flags", "samplers", "schedulers", "upscalers")),
    *(("GET", p) for p in ("latent-upscale-modes", "sd-models", "sd-vae", "hypernetworks")),
    *(("GET", p) for p in ("face-restorers", "realesrgan-models", "prompt-styles", "embeddings")),
    *(("POST", p) for p in ("refresh-embeddings", "refresh-checkpoints", "refresh-vae")),
    *(("POST", p) for p in ("create/embedding", "create/hypernetwork")),
    *(("POST", p) for p in ("train/embedding", "train/hypernetwork")),
    ("GET", "memory"),
    *(("POST", p) for p in ("unload-checkpoint", "reload-checkpoint")),
    *(("GET", p) for p in ("scripts", "script-info", "extensions")),
    *(("POST", p) for p in ("server-kill", "server-restart", "server-stop")),
    ("GET", "loras"),
    ("POST", "refresh-loras"),
]
COMPAT_DOC = Path(__file__).resolve().parents[2] / "docs" / "compat.md"


def test_every_a1111_route_is_routed_and_documented() -> None:
    from impasto.api.compat import compat_routers

    routed = set()
    for router in compat_routers():
        for item in router.routes:
            for method in getattr(item, "methods", ()):
                routed.add((method, item.path))
    doc = COMPAT_DOC.read_text()
    assert len(A1111_ROUTES) == 41  # 39 add_api_route entries (options twice) + 2 of Lora
    for method, path in A1111_ROUTES:
        assert f"| `{method} /{path}`" in doc, f"docs/compat.md lacks {method} /{path}"
        assert (method, f"/sdapi/v1/{path}") in routed, f"{method} /sdapi/v1/{path}"


def test_routes_that_only_answer_501_are_left_out_of_the_api_document(
    http: httpx.Client,
) -> None:
    """Routed (A1111's clients get the 501 and what to do instead), but not listed: a schema
    lists what the daemon serves, and schema-driven testers count a 5xx as a fault."""
    paths = http.get("/schema/openapi.json").json()["paths"]
    for route in ("interrogate", "create/embedding", "train/hypernetwork", "server-restart"):
        assert f"/sdapi/v1/{route}" not in paths, route
    assert "/sdapi/v1/txt2img" in paths and "/sdapi/v1/server-stop" in paths
    training = http.post("/sdapi/v1/train/embedding", json={})
    assert training.status_code == 501 and "training" in training.json()["detail"]


def test_the_api_document_lists_the_a1111_body_fields(http: httpx.Client) -> None:
    paths = http.get("/schema/openapi.json").json()["paths"]
    for route, field in (("txt2img", "enable_hr"), ("img2img", "inpainting_mask_invert")):
        body = paths[f"/sdapi/v1/{route}"]["post"]["requestBody"]["content"]["application/json"]
        assert field in body["schema"]["properties"], route


def test_infotext_labels_split_every_size_as_a1111_does() -> None:
    """png-info's ``parameters`` and ``infotext`` read "WxH" values as A1111's parser does."""
    labels = infotext_labels("a cat\nSteps: 2, Sampler: Euler, Size: 64x80, Hires resize: 96x120")
    assert (labels["Size-1"], labels["Size-2"]) == ("64", "80")
    assert (labels["Hires resize-1"], labels["Hires resize-2"]) == ("96", "120")
    assert "Hires resize" not in labels


def test_eta_and_the_eta_options_reach_samplers_that_add_noise(http: httpx.Client) -> None:
    """A1111's ``eta`` (webuiapi sends 1.0), else ``eta_ancestral`` / ``eta_ddim``; samplers
    without per-step noise run without it, as A1111 passes it only to those that take it."""
    body = {"prompt": "eta-mapping a cat", "steps": 2, "width": 64, "height": 64}
    cases = [
        ({"sampler_name": "DDIM", "eta": 0.4}, 0.4, {"Eta DDIM": "0.4"}),
        ({"sampler_name": "Euler a", "eta": 1.0}, 1.0, {}),
        ({"sampler_name": "Euler", "eta": 0.4}, None, {}),
        ({"sampler_name": "Euler a", "override_settings": {"eta_ancestral": 0.2}}, 0.2, {}),
        ({"sampler_name": "DDIM", "override_settings": {"eta_ancestral": 0.2}}, None, {}),
        ({"sampler_name": "Euler a", "infotext": "x\nSteps: 2, Seed: 1, Eta: 0.6"}, 0.6, {}),
    ]
    for fields, eta, written in cases:
        answer = http.post("/sdapi/v1/txt2img", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        plan = _latest_plan(http, "eta-mapping")
        assert plan["eta"] == eta, (fields, plan)
        extra = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
        for key, value in written.items():
            assert extra["extra"].get(key) == value, extra
        if eta in (None, 1.0):  # the sampler's own: nothing written, as in A1111
            assert not {"Eta", "Eta DDIM"} & set(extra["extra"]), extra
    bad = {**body, "sampler_name": "Euler a", "override_settings": {"eta_ancestral": 3}}
    refused = http.post("/sdapi/v1/txt2img", json=bad)
    assert refused.status_code == 422 and "eta_ancestral" in refused.text, refused.text


def test_options_a_request_would_refuse_are_refused_where_they_are_set(
    http: httpx.Client,
) -> None:
    """A bad eta or VAE option was kept, and every request after it was a 422 naming a field
    the client had not sent; now ``POST /options`` refuses it and keeps nothing."""
    before = http.get("/sdapi/v1/options").json()
    for option, value, words in (
        ("eta_ancestral", "x", "between 0 and 1"),
        ("eta_ddim", 5, "between 0 and 1"),
        ("sd_vae", "missing.safetensors", "VAE 'missing' is not installed"),
    ):
        refused = http.post("/sdapi/v1/options", json={option: value, "samples_format": "jpg"})
        assert refused.status_code == 422, refused.text
        (item,) = refused.json()["detail"]
        assert item["loc"] == ["body", option] and words in item["msg"], item
    # A body that switches the model and holds an option too large to keep: the model stayed.
    other = next(
        m["title"]
        for m in http.get("/sdapi/v1/sd-models").json()
        if m["title"] != before["sd_model_checkpoint"]
    )
    too_large = {"sd_model_checkpoint": other, "notes": "x" * 20_000}
    refused = http.post("/sdapi/v1/options", json=too_large)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "notes"]
    assert http.get("/sdapi/v1/options").json() == before  # nothing of the refused bodies kept
    body = {"prompt": "options a cat", "steps": 1, "width": 64, "height": 64}
    assert http.post("/sdapi/v1/txt2img", json=body).status_code == 200
    unknown_vae = http.post(
        "/sdapi/v1/txt2img", json={**body, "override_settings": {"sd_vae": "missing"}}
    )
    assert unknown_vae.status_code == 422
    assert unknown_vae.json()["detail"][0]["loc"] == ["body", "override_settings.sd_vae"]


def test_a_checkpoint_that_cannot_draw_alone_is_refused_where_the_client_named_it(
    http: httpx.Client,
) -> None:
    """An SDXL refiner as the checkpoint was a 422 naming the native ``model``, a field A1111
    clients never send; set with ``POST /options`` it was kept, and every request after it
    failed. Now each is refused where it was named, and nothing is kept."""
    before = http.get("/sdapi/v1/options").json()
    refused = http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sdxl-tiny-refiner"})
    assert refused.status_code == 422, refused.text
    (item,) = refused.json()["detail"]
    assert item["loc"] == ["body", "sd_model_checkpoint"] and "SDXL refiner" in item["msg"]
    assert http.get("/sdapi/v1/options").json() == before
    body = {"prompt": "refiner alone", "steps": 1, "width": 64, "height": 64}
    overridden = {**body, "override_settings": {"sd_model_checkpoint": "sdxl-tiny-refiner"}}
    answer = http.post("/sdapi/v1/txt2img", json=overridden)
    assert answer.status_code == 422, answer.text
    (item,) = answer.json()["detail"]
    assert item["loc"] == ["body", "override_settings.sd_model_checkpoint"], item
    assert "SDXL refiner" in item["msg"]
    assert http.post("/sdapi/v1/txt2img", json=body).status_code == 200


def test_overrides_too_large_to_keep_are_refused_before_the_pictures_are_stored(
    http: httpx.Client, daemon: Daemon
) -> None:
    """override_settings kept as the options (restore_afterwards false) but too large to keep:
    the 422 came after the init image was stored, which stayed behind, and named the option
    as if sent to POST /options. Now it names override_settings.<key> and stores nothing."""
    uploads = set((daemon.data_dir / "uploads").glob("*"))
    before = http.get("/sdapi/v1/options").json()
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, format="PNG")
    body = {
        "prompt": "kept overrides",
        "steps": 1,
        "width": 64,
        "height": 64,
        "init_images": [base64.b64encode(buf.getvalue()).decode()],
        "override_settings": {"notes": "x" * 20_000},
        "override_settings_restore_afterwards": False,
    }
    refused = http.post("/sdapi/v1/img2img", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "override_settings.notes"]
    assert set((daemon.data_dir / "uploads").glob("*")) == uploads
    assert http.get("/sdapi/v1/options").json() == before


def test_a_checkpoint_set_then_removed_is_named_where_it_was_set(
    http: httpx.Client, daemon: Daemon
) -> None:
    """A checkpoint set with POST /options and removed since: A1111 requests were refused
    naming the native ``model`` they never sent, and OpenAI's drew on another model without a
    word. Both now refuse, naming where the model was chosen."""
    models = Path(str(daemon.settings["models_dir"]))
    shutil.copytree(
        Path(__file__).resolve().parents[2] / "models" / "tiny" / "sd-tiny", models / "soon-gone"
    )
    try:
        chosen = http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "soon-gone"})
        assert chosen.status_code == 200, chosen.text
        shutil.rmtree(models / "soon-gone")
        body = {"prompt": "removed checkpoint", "steps": 1, "width": 64, "height": 64}
        refused = http.post("/sdapi/v1/txt2img", json=body)
        assert refused.status_code == 422, refused.text
        (item,) = refused.json()["detail"]
        assert item["loc"] == ["body", "sd_model_checkpoint"] and "soon-gone" in item["msg"]
        drawn = http.post("/v1/images/generations", json={"prompt": "x", "size": "64x64"})
        assert drawn.status_code == 400, drawn.text
        assert drawn.json()["error"]["param"] == "model"
        assert "soon-gone" in drawn.json()["error"]["message"]
        # A model the request names still works.
        overridden = {**body, "override_settings": {"sd_model_checkpoint": "sd-tiny"}}
        assert http.post("/sdapi/v1/txt2img", json=overridden).status_code == 200
    finally:
        shutil.rmtree(models / "soon-gone", ignore_errors=True)
        http.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sd-tiny"})


def test_images_in_mime_wrapped_base64_are_read_as_a1111_reads_them(http: httpx.Client) -> None:
    """A1111's b64decode skips line breaks and spaces, so clients sending MIME base64 (76-char
    lines: Python's encodebytes, Java's MIME encoder) work with it; they got a 422 here."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(
        buf, format="PNG", pnginfo=_parameters("p\nSteps: 3, Sampler: Euler, Seed: 5")
    )
    wrapped = base64.encodebytes(buf.getvalue()).decode()
    assert "\n" in wrapped.strip()
    body = {"prompt": "mime base64", "steps": 1, "width": 64, "height": 64}
    for value in (wrapped, f"data:image/png;base64,{wrapped}", wrapped.replace("\n", "\r\n")):
        img2img = http.post("/sdapi/v1/img2img", json={**body, "init_images": [value]})
        assert img2img.status_code == 200, img2img.text
        info = http.post("/sdapi/v1/png-info", json={"image": value})
        assert info.status_code == 200 and info.json()["parameters"]["Steps"] == "3", info.text
        extras = http.post("/sdapi/v1/extra-single-image", json={"image": value})
        assert extras.status_code == 200, extras.text
    junk = http.post("/sdapi/v1/img2img", json={**body, "init_images": ["!!" + wrapped]})
    assert junk.status_code == 422 and junk.json()["detail"][0]["loc"] == ["body", "init_images"]


def test_resize_seed_from_reaches_the_plan_the_png_and_the_info(http: httpx.Client) -> None:
    """A1111's seed_resize_from_w/_h (both above 0; rounded down to 8), its PNG key and info,
    and the same from an infotext."""
    body = {"prompt": "seed-resize a cat", "steps": 1, "width": 64, "height": 64, "seed": 4}
    answer = http.post(
        "/sdapi/v1/txt2img", json={**body, "seed_resize_from_w": 100, "seed_resize_from_h": 64}
    )
    assert answer.status_code == 200, answer.text
    plan = _latest_plan(http, "seed-resize")
    assert (plan["seed_resize_from_width"], plan["seed_resize_from_height"]) == (96, 64)
    info = json.loads(answer.json()["info"])
    assert (info["seed_resize_from_w"], info["seed_resize_from_h"]) == (100, 64)
    written = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
    assert written["extra"]["Seed resize from"] == "96x64"
    resized = _image(answer.json()["images"][0]).tobytes()
    # Off (webuiapi's 0, A1111's -1): the plain picture, which differs.
    for off in (0, -1):
        plain = http.post(
            "/sdapi/v1/txt2img", json={**body, "seed_resize_from_w": off, "seed_resize_from_h": 64}
        )
        assert _latest_plan(http, "seed-resize")["seed_resize_from_width"] == 0
        assert _image(plain.json()["images"][0]).tobytes() != resized
    pasted = {**body, "infotext": "x\nSteps: 1, Seed: 4, Size: 64x64, Seed resize from: 96x64"}
    assert http.post("/sdapi/v1/txt2img", json=pasted).status_code == 200
    plan = _latest_plan(http, "seed-resize")
    assert (plan["seed_resize_from_width"], plan["seed_resize_from_height"]) == (96, 64)


def test_randn_source_cpu_and_nv_are_torchs_noise_and_say_so(http: httpx.Client) -> None:
    """A1111's randn_source "CPU" and "NV" (override, option or infotext ``RNG``) run on torch's
    CPU and CUDA generators, so a seed starts from A1111's noise; GPU on Impasto's own."""
    body = {"prompt": "rng-source a cat", "steps": 1, "width": 64, "height": 64, "seed": 4}
    pictures = set()
    for source, rng in (("CPU", "cpu"), ("NV", "nv"), ("GPU", "pcg64")):
        settings = {"randn_source": source}
        answer = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": settings})
        assert answer.status_code == 200, answer.text
        assert _latest_plan(http, "rng-source")["rng"] == rng
        image = _image(answer.json()["images"][0])
        pictures.add(image.convert("RGB").tobytes())
        written = parse_a1111_parameters(image.info["parameters"])
        assert written["extra"].get("RNG") == (None if source == "GPU" else source)
    assert len(pictures) == 3  # three noise sources, three pictures
    for label, rng in (("CPU", "cpu"), ("NV", "nv")):
        pasted = {**body, "infotext": f"x\nSteps: 1, Seed: 4, Size: 64x64, RNG: {label}"}
        assert http.post("/sdapi/v1/txt2img", json=pasted).status_code == 200
        assert _latest_plan(http, "rng-source")["rng"] == rng


def test_img2img_noise_multiplier_request_option_and_infotext(http: httpx.Client) -> None:
    """A1111's ``initial_noise_multiplier`` (img2img only): the request's, else the option
    (``override_settings``, else ``POST /options``), else an infotext's ``Noise multiplier``;
    written as ``Noise multiplier`` where it is not 1, in the PNG and the info."""
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    body = {
        "init_images": [_b64_png(init)],
        "prompt": "noise-multiplier a blue door",
        "seed": 4,
        "steps": 3,
        "width": 64,
        "height": 64,
        "denoising_strength": 0.6,
    }
    before = http.get("/sdapi/v1/options").json()
    cases = [
        ({}, 1.0),
        ({"initial_noise_multiplier": 0.5}, 0.5),
        ({"override_settings": {"initial_noise_multiplier": 0.25}}, 0.25),
        ({"infotext": "x\nSteps: 3, Seed: 4, Noise multiplier: 0.75"}, 0.75),
    ]
    pictures = set()
    for fields, multiplier in cases:
        answer = http.post("/sdapi/v1/img2img", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        assert _latest_plan(http, "noise-multiplier")["noise_multiplier"] == multiplier, fields
        image = _image(answer.json()["images"][0])
        pictures.add(image.convert("RGB").tobytes())
        written = parse_a1111_parameters(image.info["parameters"])["extra"]
        extra = json.loads(answer.json()["info"])["extra_generation_params"]
        if multiplier == 1.0:  # as A1111: only where it is not 1
            assert "Noise multiplier" not in written and "Noise multiplier" not in extra
        else:
            assert float(written["Noise multiplier"]) == multiplier == extra["Noise multiplier"]
    assert len(pictures) == len(cases)  # each multiplier changes the picture
    try:
        assert http.post("/sdapi/v1/options", json={"initial_noise_multiplier": 0.5}).is_success
        assert http.post("/sdapi/v1/img2img", json=body).status_code == 200
        assert _latest_plan(http, "noise-multiplier")["noise_multiplier"] == 0.5
        txt2img = {key: body[key] for key in ("prompt", "seed", "steps", "width", "height")}
        assert http.post("/sdapi/v1/txt2img", json=txt2img).status_code == 200
        assert _latest_plan(http, "noise-multiplier")["noise_multiplier"] == 1.0  # img2img's only
    finally:
        http.post("/sdapi/v1/options", json={"initial_noise_multiplier": 1.0})
    for fields, where in (
        ({"initial_noise_multiplier": 2}, "initial_noise_multiplier"),
        ({"override_settings": {"initial_noise_multiplier": -1}}, "override_settings."),
    ):
        refused = http.post("/sdapi/v1/img2img", json={**body, **fields})
        assert refused.status_code == 422 and "1.5" in refused.text, refused.text
        assert where in json.dumps(refused.json()["detail"][0]["loc"]), refused.text
    refused = http.post("/sdapi/v1/options", json={"initial_noise_multiplier": 9})
    assert refused.status_code == 422 and "1.5" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_extra_noise_option_for_img2img_and_the_hires_pass(http: httpx.Client) -> None:
    """A1111's ``img2img_extra_noise`` ("Extra noise"): from ``override_settings``, else the
    option, else an infotext's label; it changes img2img's picture and the hires pass's, is
    written as ``Extra noise``, and a plain txt2img runs without it, as in A1111."""
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    base = {"prompt": "extra-noise a door", "seed": 4, "steps": 3, "width": 64, "height": 64}
    img2img = {**base, "init_images": [_b64_png(init)], "denoising_strength": 0.6}
    before = http.get("/sdapi/v1/options").json()
    override = {"override_settings": {"img2img_extra_noise": 0.5}}

    def run(route: str, body: dict[str, Any]) -> tuple[bytes, float, dict[str, Any]]:
        answer = http.post(f"/sdapi/v1/{route}", json=body)
        assert answer.status_code == 200, (body, answer.text)
        image = _image(answer.json()["images"][0])
        written = parse_a1111_parameters(image.info["parameters"])["extra"]
        return (
            image.convert("RGB").tobytes(),
            _latest_plan(http, "extra-noise")["extra_noise"],
            written,
        )

    plain, extra, written = run("img2img", img2img)
    assert extra == 0.0 and "Extra noise" not in written
    noisy, extra, written = run("img2img", {**img2img, **override})
    assert extra == 0.5 and written["Extra noise"] == "0.5" and noisy != plain
    infotext = {"infotext": "x\nSteps: 3, Seed: 4, Extra noise: 0.5"}
    assert run("img2img", {**img2img, **infotext})[0] == noisy
    hires = {**base, "enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5}
    hires_plain = run("txt2img", hires)[0]
    hires_noisy, extra, _ = run("txt2img", {**hires, **override})
    assert extra == 0.5 and hires_noisy != hires_plain
    _, extra, written = run("txt2img", {**base, **override})
    assert extra == 0.0 and "Extra noise" not in written  # no pass starts from an image
    try:
        assert http.post("/sdapi/v1/options", json={"img2img_extra_noise": 0.5}).is_success
        assert run("img2img", img2img)[0] == noisy
    finally:
        http.post("/sdapi/v1/options", json={"img2img_extra_noise": 0.0})
    refused = http.post("/sdapi/v1/options", json={"img2img_extra_noise": 2})
    assert refused.status_code == 422 and "between 0 and 1" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_sigma_churn_from_request_options_and_infotext_only_for_its_samplers(
    http: httpx.Client,
) -> None:
    """A1111's s_churn, s_tmin, s_tmax, s_noise: from ``override_settings``, else the request's
    own non-default value, else ``POST /options``, else an infotext's "Sigma churn" labels;
    passed to Euler, Heun and DPM2 only (DPM++ 2M runs without), written where not default;
    s_tmax 0 is no bound."""
    body = {"prompt": "sigma-churn a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    before = http.get("/sdapi/v1/options").json()
    churn = ("s_churn", "s_tmin", "s_tmax", "s_noise")
    cases = [
        ({"sampler_name": "Euler"}, (0.0, 0.0, None, 1.0)),
        ({"sampler_name": "Euler", "s_churn": 2, "s_tmax": 0}, (2.0, 0.0, None, 1.0)),
        (
            {
                "sampler_name": "Heun",
                "s_churn": 9,
                "override_settings": {"s_churn": 1, "s_tmax": 4},
            },
            (1.0, 0.0, 4.0, 1.0),
        ),
        ({"sampler_name": "DPM++ 2M", "s_churn": 2}, (0.0, 0.0, None, 1.0)),
        (
            {"sampler_name": "DPM2", "infotext": "x\nSteps: 3, Sigma churn: 3, Sigma noise: 0.9"},
            (3.0, 0.0, None, 0.9),
        ),
    ]
    for fields, expected in cases:
        answer = http.post("/sdapi/v1/txt2img", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        plan = _latest_plan(http, "sigma-churn")
        assert tuple(plan[name] for name in churn) == expected, fields
        written = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
        extra = json.loads(answer.json()["info"])["extra_generation_params"]
        if expected[0]:
            assert float(written["extra"]["Sigma churn"]) == expected[0] == extra["Sigma churn"]
        else:
            assert "Sigma churn" not in written["extra"] and "Sigma churn" not in extra
    try:
        assert http.post("/sdapi/v1/options", json={"s_churn": 0.5, "s_tmin": 0.2}).is_success
        assert http.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Euler"}).is_success
        assert _latest_plan(http, "sigma-churn")["s_churn"] == 0.5
        assert _latest_plan(http, "sigma-churn")["s_tmin"] == 0.2
    finally:
        http.post("/sdapi/v1/options", json={"s_churn": 0.0, "s_tmin": 0.0})
    for fields, where, words in (
        ({"s_churn": 101}, "s_churn", "100"),
        ({"override_settings": {"s_noise": 2}}, "override_settings.s_noise", "1.1"),
    ):
        refused = http.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Euler", **fields})
        assert refused.status_code == 422 and words in refused.text, refused.text
        assert where in json.dumps(refused.json()["detail"][0]["loc"]), refused.text
    refused = http.post("/sdapi/v1/options", json={"s_tmax": 1000})
    assert refused.status_code == 422 and "999" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_schedule_bounds_from_options_and_infotext_only_for_the_schedules_with_them(
    http: httpx.Client,
) -> None:
    """A1111's sigma_min, sigma_max and rho options: from ``override_settings``, else ``POST
    /options``, else an infotext's "Schedule min sigma" labels; 0 is the schedule's own; kept
    where the schedule takes them (rho: Karras and polyexponential), dropped elsewhere as A1111
    ignores them; written as A1111 labels them; a value out of range is a 422 where it is set."""
    body = {"prompt": "schedule-bounds a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    before = http.get("/sdapi/v1/options").json()
    bounds = ("sigma_min", "sigma_max", "rho")
    moved = {"sigma_min": 0.2, "sigma_max": 9, "rho": 5}
    karras = {"sampler_name": "DPM++ 2M", "scheduler": "Karras"}
    cases = [
        ({**karras}, (None, None, None)),
        ({**karras, "override_settings": moved}, (0.2, 9.0, 5.0)),
        ({**karras, "override_settings": {**moved, "sigma_max": 0}}, (0.2, None, 5.0)),
        (
            {"sampler_name": "Euler", "scheduler": "Exponential", "override_settings": moved},
            (0.2, 9.0, None),
        ),
        (
            {"sampler_name": "Euler", "scheduler": "Uniform", "override_settings": moved},
            (None, None, None),
        ),
        (
            {**karras, "infotext": "x\nSteps: 3, Schedule rho: 3, Schedule max sigma: 8"},
            (None, 8.0, 3.0),
        ),
    ]
    labels = ("Schedule min sigma", "Schedule max sigma", "Schedule rho")
    for fields, expected in cases:
        answer = http.post("/sdapi/v1/txt2img", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        plan = _latest_plan(http, "schedule-bounds")
        assert tuple(plan[name] for name in bounds) == expected, fields
        written = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
        for label, value in zip(labels, expected, strict=True):
            if value is None:
                assert label not in written["extra"], (fields, written)
            else:
                assert float(written["extra"][label]) == value, (fields, written)
    try:
        assert http.post("/sdapi/v1/options", json={"sigma_min": 0.3, "rho": 4}).is_success
        assert http.post("/sdapi/v1/txt2img", json={**body, **karras}).is_success
        plan = _latest_plan(http, "schedule-bounds")
        assert (plan["sigma_min"], plan["sigma_max"], plan["rho"]) == (0.3, None, 4.0)
    finally:
        http.post("/sdapi/v1/options", json={"sigma_min": 0.0, "rho": 0.0})
    for fields, where, words in (
        ({"override_settings": {"rho": 101}}, "override_settings.rho", "100"),
        ({"override_settings": {"sigma_min": 40}}, "sigma_min", "top sigma"),
    ):
        refused = http.post("/sdapi/v1/txt2img", json={**body, **karras, **fields})
        assert refused.status_code == 422 and words in refused.text, refused.text
        assert where in json.dumps(refused.json()["detail"][0]["loc"]), refused.text
    refused = http.post("/sdapi/v1/options", json={"sigma_max": -1})
    assert refused.status_code == 422 and "5000" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_negative_guidance_minimum_sigma_from_request_options_and_infotext(
    http: httpx.Client,
) -> None:
    """A1111's s_min_uncond (its request field, else override_settings, else the option) and
    the s_min_uncond_all and skip_early_cond options: kept where the run has a negative pass
    (CFG above 1), dropped elsewhere as they change nothing; written NGMS, NGMS all steps,
    Skip Early CFG; an infotext's labels set them; out of range is a 422 where it is set."""
    body = {"prompt": "ngms a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    body["cfg_scale"] = 5
    before = http.get("/sdapi/v1/options").json()
    names = ("s_min_uncond", "s_min_uncond_all", "skip_early_cond")
    cases = [
        ({}, (0.0, False, 0.0), {}),
        ({"s_min_uncond": 1.5}, (1.5, False, 0.0), {"NGMS": "1.5"}),
        (
            {"override_settings": {"s_min_uncond": 2, "s_min_uncond_all": True}},
            (2.0, True, 0.0),
            {"NGMS": "2", "NGMS all steps": "True"},
        ),
        ({"cfg_scale": 1, "s_min_uncond": 1.5}, (0.0, False, 0.0), {}),
        (
            {"infotext": "x\nSteps: 3, NGMS: 0.5, Skip Early CFG: 0.25"},
            (0.5, False, 0.25),
            {"NGMS": "0.5", "Skip Early CFG": "0.25"},
        ),
    ]
    for fields, expected, labels in cases:
        answer = http.post("/sdapi/v1/txt2img", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        plan = _latest_plan(http, "ngms")
        assert tuple(plan[name] for name in names) == expected, fields
        written = parse_a1111_parameters(_image(answer.json()["images"][0]).info["parameters"])
        found = {k: v for k, v in written["extra"].items() if k in ("NGMS", "NGMS all steps")}
        found.update({k: v for k, v in written["extra"].items() if k == "Skip Early CFG"})
        assert found == labels, (fields, written)
    try:
        options = {"s_min_uncond": 0.7, "skip_early_cond": 0.1}
        assert http.post("/sdapi/v1/options", json=options).is_success
        assert http.post("/sdapi/v1/txt2img", json=body).is_success
        plan = _latest_plan(http, "ngms")
        assert (plan["s_min_uncond"], plan["skip_early_cond"]) == (0.7, 0.1)
    finally:
        http.post("/sdapi/v1/options", json={"s_min_uncond": 0.0, "skip_early_cond": 0.0})
    for fields, where, words in (
        ({"s_min_uncond": 16}, "s_min_uncond", "15"),
        ({"override_settings": {"skip_early_cond": 2}}, "override_settings.skip_early_cond", "1"),
    ):
        refused = http.post("/sdapi/v1/txt2img", json={**body, **fields})
        assert refused.status_code == 422 and words in refused.text, refused.text
        assert where in json.dumps(refused.json()["detail"][0]["loc"]), refused.text
    refused = http.post("/sdapi/v1/options", json={"s_min_uncond_all": "yes"})
    assert refused.status_code == 422 and "true or false" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_always_discard_next_to_last_sigma_from_options_and_infotext(http: httpx.Client) -> None:
    """A1111's "Always discard next-to-last sigma" option (override, else POST /options, else an
    infotext's "Discard penultimate sigma"): Euler runs one step more without its last sigma
    before the end (another picture), written as A1111 writes it; DPM2 always does, so it
    writes nothing; a sampler without sigmas (DDIM) runs without it, as in A1111."""
    body = {"prompt": "discard a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    before = http.get("/sdapi/v1/options").json()
    override = {"override_settings": {"always_discard_next_to_last_sigma": True}}

    def run(fields: dict[str, Any]) -> tuple[bytes, Any, dict[str, Any]]:
        shown, (flag,), written = _generated(
            http, "txt2img", {**body, **fields}, "discard", "discard_penultimate_sigma"
        )
        return shown, flag, written

    plain, flag, written = run({"sampler_name": "Euler"})
    assert not flag and "Discard penultimate sigma" not in written
    discarded, flag, written = run({"sampler_name": "Euler", **override})
    assert flag and written["Discard penultimate sigma"] == "True"
    assert discarded != plain
    infotext = {"infotext": "x\nSteps: 3, Sampler: Euler, Discard penultimate sigma: True"}
    again, flag, _ = run({"sampler_name": "Euler", **infotext})
    assert flag and again == discarded
    _, flag, written = run({"sampler_name": "DPM2", **override})
    assert flag and "Discard penultimate sigma" not in written  # DPM2's own way
    _, flag, _ = run({"sampler_name": "DDIM", **override})
    assert not flag
    try:
        options = {"always_discard_next_to_last_sigma": True}
        assert http.post("/sdapi/v1/options", json=options).is_success
        assert run({"sampler_name": "Euler"})[0] == discarded
    finally:
        http.post("/sdapi/v1/options", json={"always_discard_next_to_last_sigma": False})
    refused = http.post("/sdapi/v1/options", json={"always_discard_next_to_last_sigma": 1})
    assert refused.status_code == 422 and "true or false" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_sgm_noise_multiplier_from_options_and_infotext(http: httpx.Client) -> None:
    """A1111's "SGM noise multiplier" option (override, else POST /options, else an
    infotext's label): a txt2img Euler starts from sqrt(sigma^2 + 1) times the noise (another
    picture), written as A1111 writes it; DDIM and img2img run without it, as in A1111."""
    body = {"prompt": "sgm a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    before = http.get("/sdapi/v1/options").json()
    override = {"override_settings": {"sgm_noise_multiplier": True}}

    def run(fields: dict[str, Any], route: str = "txt2img") -> tuple[bytes, Any, dict[str, Any]]:
        shown, (flag,), written = _generated(
            http, route, {**body, **fields}, "sgm", "sgm_noise_multiplier"
        )
        return shown, flag, written

    plain, flag, written = run({"sampler_name": "Euler"})
    assert not flag and "SGM noise multiplier" not in written
    scaled, flag, written = run({"sampler_name": "Euler", **override})
    assert flag and written["SGM noise multiplier"] == "True"
    assert scaled != plain
    answer = http.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Euler", **override})
    extra = json.loads(answer.json()["info"])["extra_generation_params"]
    assert extra["SGM noise multiplier"] is True  # a flag, as A1111's JSON has it
    infotext = {"infotext": "x\nSteps: 3, Sampler: Euler, SGM noise multiplier: True"}
    again, flag, _ = run({"sampler_name": "Euler", **infotext})
    assert flag and again == scaled
    _, flag, written = run({"sampler_name": "DDIM", **override})
    assert not flag and "SGM noise multiplier" not in written
    image = {"init_images": [_b64_png(Image.new("RGB", (64, 64), (200, 30, 30)))]}
    _, flag, _ = run({"sampler_name": "Euler", **image, **override}, "img2img")
    assert not flag
    try:
        assert http.post("/sdapi/v1/options", json={"sgm_noise_multiplier": True}).is_success
        assert run({"sampler_name": "Euler"})[0] == scaled
    finally:
        http.post("/sdapi/v1/options", json={"sgm_noise_multiplier": False})
    refused = http.post("/sdapi/v1/options", json={"sgm_noise_multiplier": "on"})
    assert refused.status_code == 422 and "true or false" in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_unipc_options_from_defaults_options_and_infotext(http: httpx.Client) -> None:
    """A1111's UniPC runs at its options' order and variant (its defaults: 3, bh1), written as
    A1111 labels them; an override changes the picture, an infotext sets them, a sampler other
    than UniPC runs without them, and what Impasto cannot run is refused where it is set."""
    body = {"prompt": "unipc a kite", "seed": 4, "steps": 4, "width": 64, "height": 64}
    before = http.get("/sdapi/v1/options").json()
    assert (before["uni_pc_order"], before["uni_pc_variant"]) == (3, "bh1")

    def run(fields: dict[str, Any]) -> tuple[bytes, tuple[Any, ...], dict[str, Any]]:
        return _generated(
            http, "txt2img", {**body, **fields}, "unipc", "unipc_order", "unipc_variant"
        )

    a1111, planned, written = run({"sampler_name": "UniPC"})
    assert planned == (3, "bh1")
    assert (written["UniPC order"], written["UniPC variant"]) == ("3", "bh1")
    override = {"override_settings": {"uni_pc_order": 2, "uni_pc_variant": "bh2"}}
    other, planned, _ = run({"sampler_name": "UniPC", **override})
    assert planned == (2, "bh2") and other != a1111
    infotext = {"infotext": "x\nSteps: 4, Sampler: UniPC, UniPC order: 2, UniPC variant: bh2"}
    again, planned, _ = run({"sampler_name": "UniPC", **infotext})
    assert planned == (2, "bh2") and again == other
    _, planned, written = run({"sampler_name": "Euler", **override})
    assert planned == (None, None) and "UniPC order" not in written
    cannot = [("uni_pc_order", 4), ("uni_pc_order", 2.5), ("uni_pc_variant", "vary_coeff")]
    for option, value in cannot:
        refused = http.post("/sdapi/v1/options", json={option: value})
        assert refused.status_code == 422 and option in refused.text, refused.text
    assert http.get("/sdapi/v1/options").json() == before


def test_steps_from_an_image_are_counted_as_a1111_counts_them(http: httpx.Client) -> None:
    """A1111's img2img runs int(steps x denoising) + 1 steps, or exactly ``steps`` with its
    "img2img_fix_steps" option; its hires pass always runs its steps exactly."""
    image = [_b64_png(Image.new("RGB", (64, 64), (200, 30, 30)))]
    body = {"prompt": "steps a kite", "seed": 4, "steps": 10, "width": 64, "height": 64}

    def run(route: str, fields: dict[str, Any]) -> tuple[str, int]:
        answer = http.post(f"/sdapi/v1/{route}", json={**body, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        job = http.get("/api/v1/history", params={"q": "steps a kite"}).json()["items"][0]
        return job["plan"]["img2img_steps"], job["total_steps"]

    img2img = {"init_images": image, "denoising_strength": 0.5}
    assert run("img2img", img2img) == ("a1111", 6)
    fixed = {"override_settings": {"img2img_fix_steps": True}}
    assert run("img2img", {**img2img, **fixed}) == ("exact", 10)
    hires = {"enable_hr": True, "hr_scale": 1.5, "denoising_strength": 0.5}
    assert run("txt2img", {**hires, "hr_second_pass_steps": 4}) == ("exact", 10 + 4)
    assert run("txt2img", {}) == ("strength", 10)
    refused = http.post("/sdapi/v1/options", json={"img2img_fix_steps": "yes"})
    assert refused.status_code == 422 and "img2img_fix_steps" in refused.text, refused.text


def test_an_init_images_transparent_parts_are_white_as_in_a1111(http: httpx.Client) -> None:
    """A1111 flattens an init image onto white (img2img_background_color): a transparent
    picture storing black runs as a white one, not as black (at strength 0 no step runs, so
    the result is the init image through the VAE)."""
    body = {"prompt": "a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}

    def run(image: Image.Image) -> bytes:
        sent = {**body, "init_images": [_b64_png(image)], "denoising_strength": 0}
        answer = http.post("/sdapi/v1/img2img", json=sent)
        assert answer.status_code == 200, answer.text
        return _image(answer.json()["images"][0]).convert("RGB").tobytes()

    clear = run(Image.new("RGBA", (64, 64), (0, 0, 0, 0)))
    assert clear == run(Image.new("RGB", (64, 64), (255, 255, 255)))
    assert clear != run(Image.new("RGB", (64, 64), (0, 0, 0)))


def test_img2img_background_color_is_what_shows_through(http: httpx.Client) -> None:
    """A1111's ``img2img_background_color``: from ``override_settings`` or ``POST /options``,
    any colour Pillow reads; a value that is none is refused where it is set."""
    body = {"prompt": "a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    clear = _b64_png(Image.new("RGBA", (64, 64), (255, 255, 255, 0)))

    def run(image: str, options: dict[str, Any]) -> bytes:
        sent = {**body, "init_images": [image], "denoising_strength": 0}
        answer = http.post("/sdapi/v1/img2img", json={**sent, "override_settings": options})
        assert answer.status_code == 200, answer.text
        return _image(answer.json()["images"][0]).convert("RGB").tobytes()

    teal = run(_b64_png(Image.new("RGB", (64, 64), (0, 128, 128))), {})
    assert run(clear, {"img2img_background_color": "#008080"}) == teal
    assert run(clear, {"img2img_background_color": "teal"}) == teal
    assert run(clear, {}) != teal
    try:
        assert http.post("/sdapi/v1/options", json={"img2img_background_color": "#008080"})
        assert run(clear, {}) == teal
        refused = http.post("/sdapi/v1/options", json={"img2img_background_color": "tealish"})
        assert refused.status_code == 422 and "img2img_background_color" in refused.text
    finally:
        http.post("/sdapi/v1/options", json={"img2img_background_color": "#ffffff"})
    wrong = http.post(
        "/sdapi/v1/img2img",
        json={**body, "init_images": [clear], "override_settings": {"img2img_background_color": 7}},
    )
    assert wrong.status_code == 422 and "override_settings.img2img_background_color" in wrong.text


def _bands(size: tuple[int, int], edges: int, vertical: bool) -> Image.Image:
    """A picture in three bands across ``size``: green, ``edges`` pixels deep, at the start,
    grey in the middle, red at the end (rows, or columns when ``vertical``)."""
    width, height = size
    pixels = np.full((height, width, 3), 128, np.uint8)
    if vertical:
        pixels[:, :edges], pixels[:, -edges:] = (0, 200, 0), (200, 0, 0)
    else:
        pixels[:edges], pixels[-edges:] = (0, 200, 0), (200, 0, 0)
    return Image.fromarray(pixels)


def test_img2img_resize_modes_lay_the_picture_out_as_a1111(http: httpx.Client) -> None:
    """``resize_mode`` 1 (crop and resize) keeps the centre; 2 (resize and fill) centres the
    picture and fills what is left with its edges stretched, not black: each runs as the
    picture laid out by hand and sent at the size wanted (strength 0: the init image through
    the VAE)."""
    body = {"prompt": "a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}

    def run(image: Image.Image, mode: int) -> bytes:
        sent = {**body, "init_images": [_b64_png(image)], "resize_mode": mode}
        answer = http.post("/sdapi/v1/img2img", json={**sent, "denoising_strength": 0})
        assert answer.status_code == 200, answer.text
        return _image(answer.json()["images"][0]).convert("RGB").tobytes()

    wide = _bands((64, 32), 4, vertical=False)  # already 64 wide: placed as it is
    filled = _bands((64, 64), 16 + 4, vertical=False)
    assert run(wide, 2) == run(filled, 0)
    assert run(wide, 2) != run(wide, 0)  # stretched, the bands would be 8 deep
    tall = _bands((32, 64), 4, vertical=True)
    assert run(tall, 2) == run(_bands((64, 64), 16 + 4, vertical=True), 0)
    cropped = _bands((128, 64), 40, vertical=True)  # its middle 64 columns: 8, 48, 8
    assert run(cropped, 1) == run(cropped.crop((32, 0, 96, 64)), 0)
    assert run(cropped, 1) != run(cropped, 0)
    refused = http.post(
        "/sdapi/v1/img2img", json={**body, "init_images": [_b64_png(wide)], "resize_mode": 4}
    )
    assert refused.status_code == 422 and "resize_mode" in refused.text


def test_img2img_resize_mode_3_resizes_the_latents(http: httpx.Client) -> None:
    """``resize_mode`` 3 (just resize, latent upscale): the image is encoded at its own size
    and the plan resizes its latents (the arithmetic: tests/engine/test_latent_resize.py);
    at the run's size it is mode 0; with a mask on the whole picture an image of another size
    is refused, where A1111 fails on the overlay of its mismatched sizes."""
    body = {"prompt": "a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}

    def run(image: Image.Image, mode: int) -> Image.Image:
        sent = {**body, "init_images": [_b64_png(image)], "resize_mode": mode}
        answer = http.post("/sdapi/v1/img2img", json={**sent, "denoising_strength": 0.5})
        assert answer.status_code == 200, answer.text
        return _image(answer.json()["images"][0])

    wide = _bands((128, 64), 40, vertical=True)
    latent = run(wide, 3)
    assert json.loads(latent.text["impasto"])["latent_resize"] is True
    assert latent.convert("RGB").tobytes() != run(wide, 0).convert("RGB").tobytes()
    square = wide.crop((0, 0, 64, 64))
    assert run(square, 3).convert("RGB").tobytes() == run(square, 0).convert("RGB").tobytes()
    masked = {**body, "init_images": [_b64_png(wide)], "resize_mode": 3, "inpaint_full_res": 0}
    refused = http.post(
        "/sdapi/v1/img2img", json={**masked, "mask": _b64_png(Image.new("L", (128, 64), 255))}
    )
    assert refused.status_code == 422 and "mask" in refused.text, refused.text


def test_img2img_masks_are_prepared_as_a1111_prepares_them(
    http: httpx.Client, daemon: Daemon
) -> None:
    """Read (the alpha of a transparent mask, else its grey), made black and white unless
    ``mask_round`` is false, inverted with ``inpainting_mask_invert``, blurred across by
    ``mask_blur_x`` and down by ``mask_blur_y`` (``mask_blur`` sets both) as cv2 blurs it at
    the mask's own size, then laid out like the image: the job's stored mask is that."""
    import cv2

    grey = np.zeros((64, 96), np.uint8)
    grey[16:48, 24:72] = 200
    grey[16:48, 24:32] = 90  # below half grey: black once rounded
    body = {"prompt": "a kite", "seed": 4, "steps": 2, "width": 96, "height": 64}
    body |= {"init_images": [_b64_png(Image.new("RGB", (96, 64), (90, 90, 200)))]}
    body |= {"inpaint_full_res": False, "denoising_strength": 0.5}

    def stored(mask: Image.Image, **fields: Any) -> np.ndarray:
        answer = http.post("/sdapi/v1/img2img", json={**body, "mask": _b64_png(mask), **fields})
        assert answer.status_code == 200, answer.text
        job = http.get("/api/v1/history/", params={"limit": 1}).json()["items"][0]
        upload = job["request"]["mask_image"].removeprefix("upload:")
        with Image.open(daemon.data_dir / "uploads" / f"{upload}.png") as image:
            return np.asarray(image.convert("L"))

    def blurred(mask: np.ndarray, x: int, y: int) -> np.ndarray:
        across = cv2.GaussianBlur(mask, (2 * int(2.5 * x + 0.5) + 1, 1), x)
        return cv2.GaussianBlur(across, (1, 2 * int(2.5 * y + 0.5) + 1), y)

    rounded = np.where(grey > 128, 255, 0).astype(np.uint8)
    got = stored(Image.fromarray(grey), mask_blur_x=2, mask_blur_y=5)
    assert np.array_equal(got, blurred(rounded, 2, 5))
    got = stored(Image.fromarray(grey), mask_blur=3, mask_round=False, inpainting_mask_invert=1)
    assert np.array_equal(got, blurred(255 - grey, 3, 3))
    transparent = np.zeros((64, 96, 4), np.uint8)
    transparent[..., 3] = rounded  # the picture is black; its alpha is the mask
    got = stored(Image.fromarray(transparent, "RGBA"), mask_blur=1)
    assert np.array_equal(got, blurred(rounded, 1, 1))
    refused = http.post(
        "/sdapi/v1/img2img", json={**body, "mask": body["init_images"][0], "mask_blur": 65}
    )
    assert refused.status_code == 422 and "mask_blur" in refused.text


def test_img2img_color_correction_from_the_options(http: httpx.Client) -> None:
    """``img2img_color_correction`` (override, else ``POST /options``, which checks it):
    the picture is the uncorrected one with the init image's colours; txt2img ignores it."""
    from impasto.engine.color_correction import color_corrected

    init = _bands((64, 64), 20, vertical=True)
    body = {"prompt": "a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    sent = {**body, "init_images": [_b64_png(init)], "denoising_strength": 0.6}

    def run(route: str, extra: dict[str, Any]) -> Image.Image:
        answer = http.post(f"/sdapi/v1/{route}", json={**extra})
        assert answer.status_code == 200, answer.text
        return _image(answer.json()["images"][0]).convert("RGB")

    plain = run("img2img", sent)
    on = {"override_settings": {"img2img_color_correction": True}}
    fixed = run("img2img", {**sent, **on})
    assert fixed.tobytes() == color_corrected(plain, init).tobytes() != plain.tobytes()
    assert run("txt2img", {**body, **on}).tobytes() == run("txt2img", body).tobytes()
    refused = http.post("/sdapi/v1/options", json={"img2img_color_correction": "sometimes"})
    assert refused.status_code == 422 and "img2img_color_correction" in refused.text


def test_ensd_from_the_options_and_infotext_changes_the_per_step_noise(http: httpx.Client) -> None:
    """A1111's "Eta noise seed delta": from ``override_settings``, else ``POST /options``, else
    an infotext's ``ENSD``; written as ``ENSD`` where the sampler draws noise per step (Euler
    a), and it changes that noise: same seed, another picture; the same delta, the same one."""
    body = {"prompt": "ensd a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    euler_a = {**body, "sampler_name": "Euler a"}
    before = http.get("/sdapi/v1/options").json()

    def run(fields: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        answer = http.post("/sdapi/v1/txt2img", json={**euler_a, **fields})
        assert answer.status_code == 200, (fields, answer.text)
        image = _image(answer.json()["images"][0])
        plan = _latest_plan(http, "ensd")
        written = parse_a1111_parameters(image.info["parameters"])["extra"]
        return image.convert("RGB").tobytes(), {"plan": plan["noise_seed_delta"], **written}

    plain, plain_info = run({})
    assert plain_info["plan"] == 0 and "ENSD" not in plain_info
    delta, info = run({"override_settings": {"eta_noise_seed_delta": 31337}})
    assert info["plan"] == 31337 and info["ENSD"] == "31337" and delta != plain
    pasted, info = run({"infotext": "x\nSteps: 3, Seed: 4, ENSD: 31337"})
    assert pasted == delta and info["plan"] == 31337
    try:
        assert http.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 31337}).is_success
        again, _ = run({})
        assert again == delta
        # Euler draws nothing after the start: the same picture, and no ENSD written.
        euler = http.post("/sdapi/v1/txt2img", json={**body, "sampler_name": "Euler"})
        assert "ENSD" not in _image(euler.json()["images"][0]).info["parameters"]
    finally:
        http.post("/sdapi/v1/options", json={"eta_noise_seed_delta": 0})
    for fields, where in (
        ({"override_settings": {"eta_noise_seed_delta": -1}}, "override_settings."),
        ({"override_settings": {"eta_noise_seed_delta": 1.5}}, "override_settings."),
        ({"infotext": "x\nSteps: 3, Seed: 4, ENSD: lots"}, "infotext"),
    ):
        refused = http.post("/sdapi/v1/txt2img", json={**euler_a, **fields})
        assert refused.status_code == 422, refused.text
        assert where in json.dumps(refused.json()["detail"][0]["loc"]), refused.text
    assert http.post("/sdapi/v1/options", json={"eta_noise_seed_delta": "x"}).status_code == 422
    assert http.get("/sdapi/v1/options").json() == before


def test_an_inpainting_model_runs_txt2img_and_takes_the_mask_weight(http: httpx.Client) -> None:
    """A1111 runs an inpainting model without a mask (txt2img on a grey picture, img2img on the
    whole picture) and reads ``inpainting_mask_weight`` ("Conditional mask weight") there; a
    regular model ignores the option, as A1111 does."""
    inpaint = {"sd_model_checkpoint": "sd-tiny-inpaint"}
    body = {"prompt": "maskweight a kite", "seed": 4, "steps": 3, "width": 64, "height": 64}
    answer = http.post("/sdapi/v1/txt2img", json={**body, "override_settings": inpaint})
    assert answer.status_code == 200, answer.text
    assert json.loads(answer.json()["info"])["is_using_inpainting_conditioning"] is True
    image = {**body, "init_images": [_b64_png(Image.new("RGB", (64, 64), (200, 30, 30)))]}

    def run(options: dict[str, Any], extra: dict[str, Any] | None = None) -> Any:
        sent = {**image, "override_settings": options, **(extra or {})}
        return _generated(http, "img2img", sent, "maskweight", "inpaint_mask_weight")

    hidden, (weight,), written = run(inpaint)
    assert weight == 1.0 and "Conditional mask weight" not in written
    shown, (weight,), written = run({**inpaint, "inpainting_mask_weight": 0.0})
    assert weight == 0.0 and float(written["Conditional mask weight"]) == 0 and shown != hidden
    pasted, (weight,), _ = run(
        inpaint, {"infotext": "x\nSteps: 3, Seed: 4, Conditional mask weight: 0"}
    )
    assert weight == 0.0 and pasted == shown
    regular, (weight,), written = run({"inpainting_mask_weight": 0.0})
    assert weight == 1.0 and "Conditional mask weight" not in written
    assert regular == run({})[0]
    refused = http.post("/sdapi/v1/options", json={"inpainting_mask_weight": 2})
    assert refused.status_code == 422 and "inpainting_mask_weight" in refused.text
