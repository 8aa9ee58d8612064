"""The AUTOMATIC1111 API driven by the real ``webuiapi`` client against a real daemon."""

from __future__ import annotations

import threading
import time
from base64 import b64decode
from io import BytesIO
from typing import Any

import pytest
import webuiapi
from PIL import Image

from impasto.engine.schedulers import SCHEDULE_SPECS
from impasto.formats.png import parse_a1111_parameters
from impasto.wire import MAX_PROMPT_CHARACTERS
from tests.harness import Daemon

SIZE = {"width": 64, "height": 64}


@pytest.fixture
def api(impasto_daemon: Daemon) -> webuiapi.WebUIApi:
    """A webuiapi client on the daemon, reset to the daemon's default model."""
    client = webuiapi.WebUIApi(baseurl=f"{impasto_daemon.url}/sdapi/v1", steps=4)
    client.set_options({"sd_model_checkpoint": "sd-tiny"})
    return client


def _colours(image: Image.Image) -> set[Any]:
    return {colour for _, colour in image.getcolors(maxcolors=1 << 16) or []}


def _embedded(image: Image.Image) -> dict[str, Any]:
    return parse_a1111_parameters(image.info["parameters"])


def test_txt2img_returns_images_of_the_size_with_parameters_round_tripped(
    api: webuiapi.WebUIApi,
) -> None:
    result = api.txt2img(
        prompt="a lighthouse",
        negative_prompt="fog",
        seed=4242,
        cfg_scale=5.5,
        sampler_name="DPM++ 2M",
        scheduler="Karras",
        batch_size=2,
        n_iter=2,
        width=64,
        height=96,
    )
    assert len(result.images) == 4
    assert all(image.size == (64, 96) for image in result.images)
    info = result.info
    assert info["all_seeds"] == [4242, 4243, 4244, 4245]
    assert (info["seed"], info["width"], info["height"]) == (4242, 64, 96)
    assert (info["sampler_name"], info["steps"], info["cfg_scale"]) == ("DPM++ 2M", 4, 5.5)
    assert info["extra_generation_params"]["Schedule type"] == "Karras"
    assert info["prompt"] == "a lighthouse" and info["negative_prompt"] == "fog"
    assert result.parameters["prompt"] == "a lighthouse"
    assert result.parameters["n_iter"] == 2
    for image, seed, infotext in zip(
        result.images, info["all_seeds"], info["infotexts"], strict=True
    ):
        embedded = _embedded(image)
        assert image.info["parameters"] == infotext
        assert embedded["seed"] == seed
        assert embedded["prompt"] == "a lighthouse"
        assert embedded["negative_prompt"] == "fog"
        assert (embedded["sampler_name"], embedded["schedule_type"]) == ("DPM++ 2M", "Karras")
        assert (embedded["width"], embedded["height"], embedded["steps"]) == (64, 96, 4)


def test_same_seed_gives_the_same_image_and_legacy_karras_names_match(
    api: webuiapi.WebUIApi,
) -> None:
    modern = api.txt2img(
        prompt="dunes", seed=9, sampler_name="DPM++ 2M", scheduler="Karras", **SIZE
    )
    legacy = api.txt2img(
        prompt="dunes", seed=9, sampler_name="DPM++ 2M Karras", scheduler="automatic", **SIZE
    )
    # A1111 1.9+: "Automatic" (or no scheduler) runs DPM++ 2M on Karras, and says so.
    automatic = api.txt2img(prompt="dunes", seed=9, sampler_name="DPM++ 2M", **SIZE)
    other = api.txt2img(
        prompt="dunes", seed=9, sampler_name="DPM++ 2M", scheduler="Uniform", **SIZE
    )
    assert modern.image.tobytes() == legacy.image.tobytes() == automatic.image.tobytes()
    assert modern.image.tobytes() != other.image.tobytes()
    assert _embedded(legacy.image)["schedule_type"] == "Karras"
    assert "Schedule type: Karras" in automatic.info["infotexts"][0]
    assert _embedded(other.image)["schedule_type"] == "Uniform"


def test_img2img_with_mask_repaints_only_the_white_half(api: webuiapi.WebUIApi) -> None:
    init = Image.new("RGB", (64, 64), (200, 30, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    result = api.img2img(
        images=[init],
        mask_image=mask,
        prompt="a blue door",
        seed=77,
        denoising_strength=0.9,
        mask_blur=0,
        inpainting_fill=1,
        **SIZE,
    )
    image = result.image.convert("RGB")
    assert image.size == (64, 64)
    kept = image.crop((0, 0, 30, 64))
    repainted = image.crop((34, 0, 64, 64))
    assert _colours(kept) == {(200, 30, 30)}
    assert len(_colours(repainted)) > 1
    assert result.info["denoising_strength"] == 0.9
    embedded = _embedded(result.image)
    assert embedded["seed"] == 77
    assert embedded["extra"]["Denoising strength"] == "0.9"
    assert result.parameters["init_images"] is None


def test_inverted_mask_keeps_the_other_half(api: webuiapi.WebUIApi) -> None:
    init = Image.new("RGB", (64, 64), (30, 200, 30))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (32, 0, 64, 64))
    result = api.img2img(
        images=[init], mask_image=mask, inpainting_mask_invert=1, mask_blur=0, seed=3, **SIZE
    )
    image = result.image.convert("RGB")
    assert _colours(image.crop((34, 0, 64, 64))) == {(30, 200, 30)}
    assert len(_colours(image.crop((0, 0, 30, 64)))) > 1


def test_options_set_the_checkpoint_later_requests_use(api: webuiapi.WebUIApi) -> None:
    titles = api.util_get_model_names()
    assert {"sd-tiny", "sd-tiny-v"} <= set(titles)
    assert api.util_get_current_model() == "sd-tiny"
    assert (
        api.set_options({"sd_model_checkpoint": "sd-tiny-v", "CLIP_stop_at_last_layers": 2}) is None
    )
    options = api.get_options()
    assert options["sd_model_checkpoint"] == "sd-tiny-v"
    assert options["CLIP_stop_at_last_layers"] == 2
    result = api.txt2img(prompt="a tree", seed=1, **SIZE)
    assert result.info["sd_model_name"] == "sd-tiny-v"
    assert _embedded(result.image)["model"] == "sd-tiny-v"
    override = api.txt2img(
        prompt="a tree", seed=1, override_settings={"sd_model_checkpoint": "sd-tiny"}, **SIZE
    )
    assert _embedded(override.image)["model"] == "sd-tiny"
    refused = api.set_options({"sd_model_checkpoint": "no-such-model"})
    assert refused["detail"][0]["loc"] == ["body", "sd_model_checkpoint"]
    assert "no-such-model" in refused["detail"][0]["msg"]
    assert api.get_options()["sd_model_checkpoint"] == "sd-tiny-v"


def test_png_info_reads_back_what_txt2img_embedded(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(prompt="a red fox", negative_prompt="blur", seed=31337, **SIZE)
    info = api.png_info(result.image)
    assert info.info == result.info["infotexts"][0]
    parameters = info.json["parameters"]
    assert parameters["Prompt"] == "a red fox"
    assert parameters["Negative prompt"] == "blur"
    assert parameters["Seed"] == "31337"
    assert (parameters["Size-1"], parameters["Size-2"]) == ("64", "64")
    assert parameters["Steps"] == "4"
    assert parameters["Sampler"] == "Euler a"  # webuiapi's default sampler
    assert "impasto" in info.json["items"]


def test_lists_describe_what_the_daemon_runs(api: webuiapi.WebUIApi) -> None:
    names = api.util_get_sampler_names()
    assert {"Euler a", "DPM++ 2M", "DDIM", "UniPC"} <= set(names)
    listed = set(api.util_get_scheduler_names())
    assert {"automatic", *(spec.a1111_name for spec in SCHEDULE_SPECS.values())} == listed
    for name in names:  # every listed sampler is accepted back
        assert api.txt2img(prompt="x", sampler_name=name, steps=2, **SIZE).image.size == (64, 64)
    assert api.refresh_checkpoints() is None


def test_unknown_lora_sampler_and_hires_fix_get_a1111_errors(api: webuiapi.WebUIApi) -> None:
    with pytest.raises(RuntimeError) as lora:
        api.txt2img(prompt="a cat <lora:paper-cut:0.7>", **SIZE)
    assert lora.value.args[0] == 422
    assert "paper-cut" in lora.value.args[1] and '"loc":["body","prompt"]' in lora.value.args[1]
    with pytest.raises(RuntimeError) as weight:
        api.txt2img(prompt="a cat <lora:paper-cut:7>", **SIZE)  # weights run from -2 to 2
    assert weight.value.args[0] == 422 and '"loc":["body","prompt"]' in weight.value.args[1]
    rule = "<lora:paper-cut:7>: the weight must be a number between -2 and 2"
    assert rule in weight.value.args[1]
    with pytest.raises(RuntimeError) as hires_tag:
        api.txt2img(prompt="a cat", enable_hr=True, hr_prompt="<lora:paper-cut:0.7>", **SIZE)
    assert hires_tag.value.args[0] == 422
    assert '"loc":["body","hr_prompt"]' in hires_tag.value.args[1]
    with pytest.raises(RuntimeError) as too_long:
        long = "a" * (MAX_PROMPT_CHARACTERS + 1)
        api.txt2img(prompt="a cat", enable_hr=True, hr_negative_prompt=long, **SIZE)
    assert too_long.value.args[0] == 422
    assert '"loc":["body","hr_negative_prompt"]' in too_long.value.args[1]
    with pytest.raises(RuntimeError) as sampler:
        api.txt2img(prompt="x", sampler_name="DEIS", **SIZE)
    assert sampler.value.args[0] == 404 and "Sampler not found" in sampler.value.args[1]
    with pytest.raises(RuntimeError) as hires:
        api.txt2img(prompt="x", enable_hr=True, hr_upscaler="R-ESRGAN 4x+", **SIZE)
    assert hires.value.args[0] == 422 and "hr_upscaler" in hires.value.args[1]
    with pytest.raises(RuntimeError) as hires_sampler:
        api.txt2img(prompt="x", enable_hr=True, hr_sampler_name="DEIS", **SIZE)
    assert hires_sampler.value.args[0] == 422 and "hr_sampler_name" in hires_sampler.value.args[1]
    with pytest.raises(RuntimeError) as size:
        api.txt2img(prompt="x", width=40, height=64)  # 40 is below the smallest size, 64
    assert size.value.args[0] == 422 and '"loc":["body","width"]' in size.value.args[1]


def test_several_init_images_are_refused_not_drawn_from_the_first(api: webuiapi.WebUIApi) -> None:
    """A1111 draws image i of the batch from init image i; Impasto's job has one init image,
    so several are a 422 naming the field, not a batch made from the first alone."""
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    with pytest.raises(RuntimeError) as several:
        api.img2img(images=[red, blue], batch_size=2, prompt="x", **SIZE)
    assert several.value.args[0] == 422
    assert '"loc":["body","init_images"]' in several.value.args[1]
    assert "2 images sent" in several.value.args[1]
    assert len(api.img2img(images=[red], batch_size=2, prompt="x", **SIZE).images) == 2


def test_hires_fix_makes_the_larger_image(api: webuiapi.WebUIApi) -> None:
    result = api.txt2img(
        prompt="a red cat",
        steps=3,
        seed=5,
        enable_hr=True,
        hr_scale=2,
        hr_upscaler="Latent (bicubic)",
        hr_second_pass_steps=4,
        denoising_strength=0.5,
        hr_sampler_name="DPM++ 2M",
        **SIZE,
    )
    assert result.image.size == (128, 128)
    sized = api.txt2img(
        prompt="a red cat",
        steps=2,
        seed=5,
        enable_hr=True,
        hr_resize_x=96,
        hr_upscaler="Lanczos",
        **SIZE,
    )
    assert sized.image.size == (96, 96)  # one side given: the aspect ratio is kept


def _wait_for_step(api: webuiapi.WebUIApi, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        progress = api.get_progress()
        if progress["state"]["sampling_step"] >= 2 and progress["current_image"]:
            return progress
        time.sleep(0.02)
    raise TimeoutError("no running job showed progress")


def test_progress_during_a_job_then_interrupt_stops_the_whole_task(
    api: webuiapi.WebUIApi, impasto_daemon: Daemon
) -> None:
    results: list[Any] = []
    long_job = {"prompt": "slow", "steps": 150, "width": 256, "height": 256, "n_iter": 2}
    worker = threading.Thread(target=lambda: results.append(api.txt2img(**long_job)))
    worker.start()
    try:
        progress = _wait_for_step(api)
    finally:
        api.interrupt()
        worker.join(60)
    state = progress["state"]
    assert state["sampling_steps"] == 150
    assert 0 < progress["progress"] < 0.5  # the first of two iterations
    assert progress["progress"] == pytest.approx(state["sampling_step"] / 150 / 2, abs=1e-3)
    assert (state["job_no"], state["job_count"]) == (0, 2)  # as A1111 counts n_iter
    assert len(state["job_timestamp"]) == 14 and not state["interrupted"]
    assert progress["eta_relative"] > 0
    assert Image.open(BytesIO(b64decode(progress["current_image"]))).format == "PNG"
    assert not worker.is_alive()
    assert results and results[0].images == []
    with impasto_daemon.client() as client:
        jobs = client.get("/api/v1/history", params={"q": "slow"}).json()["items"]
    assert [job["status"] for job in jobs] == ["cancelled", "cancelled"]
    idle = api.get_progress()
    assert (idle["progress"], idle["state"]["job_count"]) == (0, 0)
    # As A1111's State: the last task's timestamp stays, and it was interrupted.
    assert idle["state"]["job_timestamp"] == state["job_timestamp"]
    assert idle["state"]["interrupted"] is True and idle["state"]["skipped"] is False


def _txt2img_running(api: webuiapi.WebUIApi, prompt: str) -> tuple[threading.Thread, list[Any]]:
    """A slow two-iteration txt2img in a thread, once its first job shows progress; the list
    gets its result."""
    results: list[Any] = []
    task = {"prompt": prompt, "steps": 150, "width": 256, "height": 256, "n_iter": 2}
    worker = threading.Thread(target=lambda: results.append(api.txt2img(**task)))
    worker.start()
    _wait_for_step(api)
    return worker, results


def test_the_flags_stay_within_their_task_and_drop_when_the_next_begins(
    api: webuiapi.WebUIApi,
) -> None:
    """As A1111's State.begin(): queueing a task leaves the flags alone; a skip stays up while
    its own task moves on; an interrupt stays up until the task queued behind it starts."""
    second: list[Any] = []
    worker, _ = _txt2img_running(api, "flags")
    try:
        api.skip()
        deadline = time.monotonic() + 60
        while api.get_progress()["state"]["job_no"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        queued_behind = {"prompt": "flags behind", "steps": 2, "width": 64, "height": 64}
        behind = threading.Thread(target=lambda: second.append(api.txt2img(**queued_behind)))
        behind.start()
        time.sleep(0.5)  # queued behind the running task
        still = api.get_progress()["state"]
        assert (still["job_no"], still["skipped"]) == (1, True)  # its own task moved on
    finally:
        api.interrupt()
        worker.join(60)
    behind.join(60)
    assert second and len(second[0].images) == 1  # the next task ran, so it began:
    after = api.get_progress()["state"]
    assert (after["interrupted"], after["skipped"]) == (False, False)


def test_skip_cancels_only_the_running_iteration(
    api: webuiapi.WebUIApi, impasto_daemon: Daemon
) -> None:
    worker, results = _txt2img_running(api, "skipme")
    try:
        assert api.skip() is None  # A1111's skip answers null
        deadline = time.monotonic() + 60
        while api.get_progress()["state"]["job_no"] != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        second = _wait_for_step(api)
        assert second["state"]["skipped"] is True and second["state"]["job_count"] == 2
    finally:
        api.interrupt()
        worker.join(60)
    with impasto_daemon.client() as client:
        jobs = client.get("/api/v1/history", params={"q": "skipme"}).json()["items"]
    assert [job["status"] for job in jobs] == ["cancelled", "cancelled"]
    assert results and results[0].images == []
