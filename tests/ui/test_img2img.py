"""Img2img and inpainting from the page: choose an image, paint a mask, submit."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Page, expect

from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui


def test_inpaint_uploads_image_and_painted_mask(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    source = tmp_path / "init.png"
    Image.new("RGB", (96, 64), (200, 120, 40)).save(source)
    open_ui(page)
    fill_form(page, prompt="inpaint from the page", **QUICK)
    page.select_option("#model", "sd-tiny-inpaint")
    page.click("#img-card > summary")
    page.set_input_files("#init-file", str(source))
    canvas = page.locator(".mask-canvas")
    expect(canvas).to_be_visible()
    expect(page.locator("#img-summary")).to_have_text("· img2img")

    # Paint a stroke across the upper-left quarter of the image.
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box
    page.mouse.move(box["x"] + 4, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.2, steps=8)
    page.mouse.up()
    expect(page.locator("#img-summary")).to_have_text("· inpaint")
    page.fill("#strength", "0.6")
    page.select_option("#inpaint_area", "masked")
    page.select_option("#masked_content", "fill")
    page.fill("#inpaint_padding", "16")
    page.fill("#noise_multiplier", "0.8")
    page.click("#submit")

    job = finished_job(page, impasto_daemon)
    request = job["request"]
    assert request["init_image"].startswith("upload:")
    assert request["mask_image"].startswith("upload:")
    assert request["strength"] == 0.6
    assert request["model"] == "sd-tiny-inpaint"
    assert (request["inpaint_area"], request["masked_content"]) == ("masked", "fill")
    assert request["inpaint_padding"] == 16
    assert request["noise_multiplier"] == 0.8
    # Only masked: the picture keeps the init image's size, not width x height.
    assert (job["results"][0]["width"], job["results"][0]["height"]) == (96, 64)
    mask = Image.open(io.BytesIO(mask_png(page))).convert("L")
    # White where painted (repaint), black elsewhere, at the init image's size.
    assert mask.size == (96, 64)
    assert mask.getpixel((10, 13)) == 255
    assert mask.getpixel((50, 50)) == 0


def mask_png(page: Page) -> bytes:
    """The mask exactly as the page would upload it."""
    data = page.evaluate(
        """async () => {
            const blob = await window.impasto.form.mask.maskBlob();
            return Array.from(new Uint8Array(await blob.arrayBuffer()));
        }"""
    )
    return bytes(data)


def test_the_noise_multiplier_goes_only_with_an_image(page: Page, impasto_daemon: Any) -> None:
    """The API refuses a noise multiplier without an init image: a value left in the form
    from an img2img run must not make the next txt2img a 422."""
    open_ui(page)
    fill_form(page, prompt="txt2img after img2img", **QUICK)
    page.click("#img-card > summary")
    page.fill("#noise_multiplier", "0.5")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["noise_multiplier"] == 1.0
    assert job["request"]["init_image"] is None


def test_sigma_churn_goes_only_with_a_sampler_that_takes_it(
    page: Page, impasto_daemon: Any
) -> None:
    """Euler takes the Advanced card's sigma churn; a sampler without churn gets the fields
    disabled and sends none (the API would refuse them)."""
    open_ui(page)
    fill_form(page, prompt="churned kite", **QUICK)
    page.select_option("#sampler", "euler")
    page.click("#advanced-card > summary")
    fill_form(page, s_churn="2", s_tmin="0.1", s_tmax="8", s_noise="1.003")
    fill_form(page, noise_seed_delta="31337")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    churn = {name: job["request"][name] for name in ("s_churn", "s_tmin", "s_tmax", "s_noise")}
    assert churn == {"s_churn": 2.0, "s_tmin": 0.1, "s_tmax": 8.0, "s_noise": 1.003}
    assert job["request"]["noise_seed_delta"] == 31337
    page.select_option("#sampler", "dpmpp_2m")
    expect(page.locator("#s_churn")).to_be_disabled()
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    job = finished_job(page, impasto_daemon)
    assert job["request"]["sampler"] == "dpmpp_2m" and job["request"]["s_churn"] == 0.0


def test_schedule_bounds_go_only_with_a_schedule_that_takes_them(
    page: Page, impasto_daemon: Any
) -> None:
    """Karras takes the Advanced card's schedule sigma max, min and rho; Exponential takes the
    ends but no rho; Uniform none: their fields are disabled and not sent (the API would refuse
    them)."""
    open_ui(page)
    fill_form(page, prompt="bounded kite", **QUICK)
    page.select_option("#sampler", "euler")
    page.select_option("#schedule", "karras")
    page.click("#advanced-card > summary")
    expect(page.locator("#rho")).to_have_attribute("placeholder", "7")
    fill_form(page, sigma_max="9", sigma_min="0.2", rho="5")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    bounds = {name: job["request"][name] for name in ("sigma_min", "sigma_max", "rho")}
    assert bounds == {"sigma_min": 0.2, "sigma_max": 9.0, "rho": 5.0}
    page.select_option("#schedule", "exponential")
    expect(page.locator("#rho")).to_be_disabled()
    expect(page.locator("#sigma_min")).to_be_enabled()
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    job = finished_job(page, impasto_daemon)
    bounds = {name: job["request"][name] for name in ("sigma_min", "sigma_max", "rho")}
    assert job["request"]["schedule"] == "exponential"
    assert bounds == {"sigma_min": 0.2, "sigma_max": 9.0, "rho": None}
    page.select_option("#schedule", "uniform")
    for name in ("sigma_min", "sigma_max", "rho"):
        expect(page.locator(f"#{name}")).to_be_disabled()


def test_negative_guidance_settings_are_sent(page: Page, impasto_daemon: Any) -> None:
    """The Advanced card's negative guidance minimum sigma, its every-step box and the early
    skip reach the request; the box goes only with a sigma above 0 (the API would refuse it)."""
    open_ui(page)
    fill_form(page, prompt="skipped kite", **QUICK)
    page.click("#advanced-card > summary")
    fill_form(page, cfg_scale="5", s_min_uncond="1.5", skip_early_cond="0.2")
    page.check("#s_min_uncond_all")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    skip = {name: job["request"][name] for name in ("s_min_uncond", "s_min_uncond_all")}
    assert skip == {"s_min_uncond": 1.5, "s_min_uncond_all": True}
    assert job["request"]["skip_early_cond"] == 0.2
    fill_form(page, s_min_uncond="0", skip_early_cond="0")
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    job = finished_job(page, impasto_daemon)
    assert (job["request"]["s_min_uncond"], job["request"]["s_min_uncond_all"]) == (0.0, False)


def test_discarding_the_next_to_last_sigma_follows_the_sampler(
    page: Page, impasto_daemon: Any
) -> None:
    """The box is the user's choice for Euler; DPM2 always discards (checked, disabled); DDIM
    walks timesteps (disabled, unchecked, not sent: the API would refuse it)."""
    open_ui(page)
    fill_form(page, prompt="discarded kite", **QUICK)
    page.select_option("#sampler", "euler")
    page.click("#advanced-card > summary")
    page.check("#discard_penultimate_sigma")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["discard_penultimate_sigma"] is True
    page.select_option("#sampler", "dpm_2")
    expect(page.locator("#discard_penultimate_sigma")).to_be_disabled()
    expect(page.locator("#discard_penultimate_sigma")).to_be_checked()
    page.select_option("#sampler", "ddim")
    expect(page.locator("#discard_penultimate_sigma")).not_to_be_checked()
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    job = finished_job(page, impasto_daemon)
    assert job["request"]["sampler"] == "ddim"
    assert job["request"]["discard_penultimate_sigma"] is False
    page.select_option("#sampler", "euler")  # the user's choice comes back
    expect(page.locator("#discard_penultimate_sigma")).to_be_checked()


def test_the_sgm_noise_multiplier_box_follows_the_sampler_and_the_image(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    """Checked for Euler, it is sent and the PNG says so; DDIM walks timesteps (disabled, not
    sent); with an init image it is not sent (the API refuses it there)."""
    open_ui(page)
    fill_form(page, prompt="sgm kite", **QUICK)
    page.select_option("#sampler", "euler")
    page.click("#advanced-card > summary")
    page.check("#sgm_noise_multiplier")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["sgm_noise_multiplier"] is True
    assert "SGM noise multiplier: True" in job["results"][0]["metadata"]["parameters"]
    page.select_option("#sampler", "ddim")
    expect(page.locator("#sgm_noise_multiplier")).to_be_disabled()
    expect(page.locator("#sgm-note")).to_have_text("(not for this sampler)")
    page.select_option("#sampler", "euler")
    expect(page.locator("#sgm_noise_multiplier")).to_be_enabled()
    expect(page.locator("#sgm_noise_multiplier")).to_be_checked()
    source = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 120, 40)).save(source)
    page.click("#img-card > summary")
    page.set_input_files("#init-file", str(source))
    expect(page.locator("#img-summary")).to_have_text("· img2img")
    page.click("#submit")  # the checked box stays home: the run starts from the image
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    job = finished_job(page, impasto_daemon)
    assert job["request"]["init_image"].startswith("upload:")
    assert not job["request"].get("sgm_noise_multiplier")


def test_the_unipc_fields_follow_the_sampler(page: Page, impasto_daemon: Any) -> None:
    """UniPC's order and variant: off for Euler, sent for UniPC and written in the PNG; an
    order out of range is shown at the field before anything is sent."""
    open_ui(page)
    fill_form(page, prompt="unipc kite", **QUICK)
    page.click("#advanced-card > summary")
    page.select_option("#sampler", "euler")
    expect(page.locator("#unipc_order")).to_be_disabled()
    expect(page.locator("#unipc_variant")).to_be_disabled()
    page.select_option("#sampler", "unipc")
    expect(page.locator("#unipc_order")).to_be_enabled()
    page.fill("#unipc_order", "3")
    page.select_option("#unipc_variant", "bh1")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert (job["request"]["unipc_order"], job["request"]["unipc_variant"]) == (3, "bh1")
    assert "UniPC order: 3, UniPC variant: bh1" in job["results"][0]["metadata"]["parameters"]
    page.fill("#unipc_order", "5")
    page.click("#submit")
    expect(page.locator("#err-unipc_order")).to_contain_text("between 1 and 3")


def _again_with_an_image(
    page: Page, daemon: Any, previous: dict[str, Any], tmp_path: Path, size: tuple[int, int]
) -> dict[str, Any]:
    """Choose a plain picture of ``size`` as the init image and submit the form again: the new
    job (not ``previous``) once it finished."""
    source = tmp_path / "init.png"
    Image.new("RGB", size, (40, 120, 200)).save(source)
    page.set_input_files("#init-file", str(source))
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", previous["id"], timeout=30_000)
    return finished_job(page, daemon)


def test_steps_from_an_image_go_with_an_image(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    """The step count is not sent for a plain txt2img (the API would refuse it); with an
    image, "exactly the steps" runs all 4 at strength 0.5."""
    open_ui(page)
    fill_form(page, prompt="exact kite", **QUICK)
    page.click("#img-card > summary")
    page.select_option("#img2img_steps", "exact")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"].get("img2img_steps", "strength") == "strength"
    page.fill("#strength", "0.5")
    job = _again_with_an_image(page, impasto_daemon, job, tmp_path, (64, 64))
    assert job["request"]["img2img_steps"] == "exact"
    assert job["total_steps"] == 4


def test_the_mask_weight_shows_for_inpainting_models_and_goes_with_an_image(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    """The mask weight field is there for an inpainting model only; it is sent with an image
    (img2img on an inpainting model, no mask needed), not with a txt2img run, which an
    inpainting model now runs too."""
    open_ui(page)
    fill_form(page, prompt="weighted kite", **QUICK)
    page.click("#img-card > summary")
    expect(page.locator("#inpaint_mask_weight")).to_be_hidden()
    page.select_option("#model", "sd-tiny-inpaint")
    expect(page.locator("#inpaint_mask_weight")).to_be_visible()
    page.fill("#inpaint_mask_weight", "0.3")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["status"] == "completed" and job["request"]["model"] == "sd-tiny-inpaint"
    assert job["request"]["inpaint_mask_weight"] == 1.0  # txt2img: not sent
    job = _again_with_an_image(page, impasto_daemon, job, tmp_path, (64, 64))
    assert job["request"]["inpaint_mask_weight"] == 0.3 and job["status"] == "completed"
    page.select_option("#model", "sd-tiny")
    expect(page.locator("#inpaint_mask_weight")).to_be_hidden()


def test_the_resize_mode_goes_only_with_an_image(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    """How an image of another shape is fitted, and the colour correction: not sent for
    txt2img (the API would refuse them), sent with an image, which then runs at width x
    height."""
    open_ui(page)
    fill_form(page, prompt="fitted kite", **QUICK)
    page.click("#img-card > summary")
    page.select_option("#resize_mode", "fill")
    page.check("#color_correction")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["resize_mode"] == "stretch" and job["request"]["init_image"] is None
    assert job["request"]["color_correction"] is False
    job = _again_with_an_image(page, impasto_daemon, job, tmp_path, (128, 64))
    assert job["request"]["resize_mode"] == "fill" and job["status"] == "completed"
    assert job["request"]["color_correction"] is True
    assert (job["results"][0]["width"], job["results"][0]["height"]) == (64, 64)
    # The latents resized: the image kept at its own size for the engine.
    page.select_option("#resize_mode", "latent")
    previous = job["id"]
    page.click("#submit")
    expect(page.locator("#live")).not_to_have_attribute("data-job", previous, timeout=30_000)
    job = finished_job(page, impasto_daemon)
    assert job["request"]["resize_mode"] == "latent" and job["status"] == "completed"
    assert (job["results"][0]["width"], job["results"][0]["height"]) == (64, 64)


def test_a_mask_erased_to_nothing_is_no_mask(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    """Painted, then wiped with the eraser: what the eraser leaves at its edges is not a mask,
    so the job is img2img and no mask is uploaded."""
    source = tmp_path / "init.png"
    Image.new("RGB", (96, 64), (40, 120, 200)).save(source)
    open_ui(page)
    fill_form(page, prompt="erased mask", **QUICK)
    page.click("#img-card > summary")
    page.set_input_files("#init-file", str(source))
    canvas = page.locator(".mask-canvas")

    def stroke() -> None:
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()  # checking the eraser may scroll the page
        assert box
        y = box["y"] + box["height"] * 0.5
        page.mouse.move(box["x"] + 2, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 2, y, steps=10)
        page.mouse.up()

    page.evaluate("document.querySelector('#mask-brush').value = 24")
    stroke()
    expect(page.locator("#img-summary")).to_have_text("· inpaint")
    page.check("#mask-erase")
    stroke()  # the same stroke again, erasing: only its soft edges may be left
    expect(page.locator("#img-summary")).to_have_text("· img2img")
    with page.expect_request("**/api/v1/generate") as sent:
        page.click("#submit")
    assert "mask_image" not in json.loads(sent.value.post_data or "{}")
    assert finished_job(page, impasto_daemon)["request"]["mask_image"] is None
