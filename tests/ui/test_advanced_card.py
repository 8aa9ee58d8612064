"""The Advanced card sends Clip skip; the daemon's refusal for a model without hidden states
shows on the field, and a PNG's A1111 "Clip skip" fills it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui


def _advanced(page: Page, prompt: str) -> None:
    """The Generate form with ``prompt`` and the quick settings, its Advanced card open."""
    open_ui(page)
    fill_form(page, prompt=prompt, **QUICK)
    page.click("#advanced-card summary")


def test_clip_skip_is_sent_and_a_model_that_cannot_skip_says_so(
    page: Page, impasto_daemon: Any
) -> None:
    _advanced(page, "a lighthouse, clip skip from the ui")
    expect(page.locator("#clip_skip")).to_have_value("1")
    # The bundled default model's text encoder was exported without hidden states.
    page.fill("#clip_skip", "2")
    page.click("#submit")
    error = page.locator("#err-clip_skip")
    expect(error).to_be_visible()
    expect(error).to_contain_text("hidden states")
    # Out of the schema's range: refused in the page, before any request.
    page.fill("#clip_skip", "13")
    page.click("#submit")
    expect(error).to_contain_text("12")

    page.fill("#clip_skip", "1")
    page.click("#submit")
    assert finished_job(page, impasto_daemon)["request"]["clip_skip"] == 1


def test_clip_skip_field_is_capped_at_the_chosen_models_limit(
    page: Page, impasto_daemon: Any
) -> None:
    open_ui(page)
    page.click("#advanced-card summary")
    field, note = page.locator("#clip_skip"), page.locator("#clip-skip-limit")
    # The default model (impasto-shapes) was exported without hidden states.
    expect(note).to_contain_text("1 only")
    expect(field).to_have_attribute("max", "1")
    # sd-tiny-turbo's text encoder has two layers' hidden states.
    page.select_option("#model", "sd-tiny-turbo")
    expect(note).to_contain_text("1 to 2")
    expect(field).to_have_attribute("max", "2")
    page.select_option("#model", "")
    expect(field).to_have_attribute("max", "1")


def test_variation_seed_fields_are_sent_and_checked_in_the_page(
    page: Page, impasto_daemon: Any
) -> None:
    _advanced(page, "a lighthouse, a variation from the ui")
    expect(page.locator("#subseed")).to_have_value("-1")
    expect(page.locator("#subseed_strength")).to_have_value("0")
    page.fill("#subseed_strength", "1.5")
    page.click("#submit")
    expect(page.locator("#err-subseed_strength")).to_contain_text("between 0 and 1")
    page.fill("#subseed", "77")
    page.fill("#subseed_strength", "0.25")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert (job["request"]["subseed"], job["request"]["subseed_strength"]) == (77, 0.25)
    assert (job["plan"]["subseed"], job["plan"]["subseed_strength"]) == (77, 0.25)


def test_eta_and_resize_seed_from_are_sent_and_eta_is_off_where_unused(
    page: Page, impasto_daemon: Any
) -> None:
    _advanced(page, "a lighthouse, eta from the ui")
    eta = page.locator("#eta")
    page.select_option("#sampler", "euler")
    expect(eta).to_be_disabled()
    page.select_option("#sampler", "ddim")
    expect(eta).to_be_enabled()
    expect(eta).to_have_attribute("placeholder", "0")
    page.fill("#eta", "1.5")
    page.click("#submit")
    expect(page.locator("#err-eta")).to_contain_text("between 0 and 1")
    page.fill("#eta", "0.4")
    # Resize seed from: one side alone is the daemon's 422 on the other.
    page.fill("#seed_resize_from_width", "64")
    page.click("#submit")
    expect(page.locator("#err-seed_resize_from_height")).to_contain_text("both sides")
    page.fill("#seed_resize_from_height", "96")
    page.select_option("#rng", "cpu")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert (job["request"]["eta"], job["plan"]["eta"], job["plan"]["sampler"]) == (0.4, 0.4, "ddim")
    sides = (job["plan"]["seed_resize_from_width"], job["plan"]["seed_resize_from_height"])
    assert sides == (64, 96)
    assert job["plan"]["rng"] == "cpu"


def test_seamless_tiling_is_sent_and_a_size_it_cannot_wrap_shows_on_the_field(
    page: Page, impasto_daemon: Any
) -> None:
    _advanced(page, "a brick wall, seamless from the ui")
    tiling = page.locator("#tiling")
    expect(tiling).not_to_be_checked()
    tiling.check()
    # The default model's UNet divides 64 whole but not 72: drawn larger and cropped, no wrap.
    page.fill("#width", "72")
    page.click("#submit")
    error = page.locator("#err-width")
    expect(error).to_be_visible()
    expect(error).to_contain_text("seamless tiling")
    page.fill("#width", "64")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["tiling"] is True and job["plan"]["tiling"] is True
    # Remembered with the other settings.
    page.reload()
    page.click("#advanced-card summary")
    expect(page.locator("#tiling")).to_be_checked()
    # One axis: the menu sends "x" (off, it is disabled and nothing is sent for it).
    axes = page.locator("#tiling_axes")
    page.select_option("#tiling_axes", "x")
    page.fill("#height", "72")  # only the wrapping side must divide whole
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["tiling"] == "x" and job["request"]["height"] == 72
    # Written as A1111's asymmetric tiling extension writes one axis.
    assert "Tile X: True, Tile Y: False" in job["results"][0]["metadata"]["parameters"]
    tiling.uncheck()
    expect(axes).to_be_disabled()
