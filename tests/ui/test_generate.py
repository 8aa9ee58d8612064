"""The Generate panel on a real daemon: submit, live preview, cancel, validation, persistence."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, Route, expect

from impasto.wire import LIMITS
from tests.harness import wait_status
from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui


def test_submit_shows_live_preview_then_final_image(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="a lighthouse, ui submit test", **{**QUICK, "steps": "24"})
    page.keyboard.press("Control+Enter")

    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "completed", timeout=60_000)
    job_id = live.get_attribute("data-job")
    assert job_id
    # Previews arrive while sampling (preview_every=1); the page counted the ones it showed.
    assert int(live.get_attribute("data-previews") or 0) >= 1
    expect(page.locator("#live-step")).to_have_text("Step 24 / 24")
    image = page.locator(f"#results[data-job='{job_id}'] img")
    expect(image).to_have_count(1)
    page.wait_for_function("document.querySelector('#results img').naturalWidth === 64")
    with impasto_daemon.client() as client:
        job = client.get(f"/api/v1/generate/{job_id}").json()
    assert job["status"] == "completed"
    assert job["request"]["prompt"] == "a lighthouse, ui submit test"
    assert job["request"]["steps"] == 24


def test_a_job_whose_events_overtake_its_post_answer_stays_done(
    page: Page, impasto_daemon: Any
) -> None:
    # A short job can start, run and finish (over the event stream) before the answer to its
    # POST reaches the page. Hold that answer back until the job has completed: the card must
    # then stay "completed", not go back to "queued".
    def after_the_job_ends(route: Route) -> None:
        response = route.fetch()
        job_id = response.json()["id"]
        with impasto_daemon.client() as client:
            assert wait_status(client, job_id, {"completed"})["status"] == "completed"
        # The page has had the job's events (its card cannot show them before it knows the id).
        page.wait_for_function(
            "id => window.impasto.live.buffered.get(id)?.some(([type]) => type === 'completed')",
            arg=job_id,
        )
        route.fulfill(response=response)

    page.route("**/api/v1/generate", after_the_job_ends)
    open_ui(page)
    fill_form(page, prompt="a job faster than its answer", **QUICK)
    with page.expect_response("**/api/v1/generate"):
        page.click("#submit")
    page.wait_for_timeout(300)  # the page handles the late answer
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "completed")
    expect(page.locator("#live-title")).to_have_text("Done")
    expect(page.locator("#results img")).to_have_count(1)


def test_cancel_running_job(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="a long job to cancel", width="512", height="512", steps="150")
    page.click("#submit")
    expect(page.locator("#live")).to_have_attribute("data-state", "running", timeout=30_000)
    page.wait_for_function("/Step [1-9]/.test(document.querySelector('#live-step').textContent)")
    job_id = page.locator("#live").get_attribute("data-job")
    page.click("#live-cancel")

    expect(page.locator("#live")).to_have_attribute("data-state", "cancelled", timeout=30_000)
    expect(page.locator("#live-title")).to_have_text("Cancelled")
    with impasto_daemon.client() as client:
        assert wait_status(client, str(job_id), {"cancelled"})["status"] == "cancelled"


def test_client_validation_shows_error_on_field_and_sends_nothing(page: Page) -> None:
    open_ui(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    fill_form(page, prompt="bad width", width="65")
    page.click("#submit")

    error = page.locator("#err-width")
    expect(error).to_be_visible()
    expect(error).to_have_text("must be an integer multiple of 8 between 64 and 2048")
    expect(page.locator("#width")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#width")).to_be_focused()
    assert posts == []
    # Fixing the field clears its error.
    page.fill("#width", "64")
    expect(error).to_be_hidden()
    # Text lengths come from the same limits: a prompt may be as long as the API takes.
    expect(page.locator("#prompt")).to_have_attribute("maxlength", str(LIMITS["prompt"].max_length))
    expect(page.locator("#negative_prompt")).to_have_attribute(
        "maxlength", str(LIMITS["negative_prompt"].max_length)
    )


def test_a_seed_past_what_a_browser_holds_exactly_is_refused_not_changed(page: Page) -> None:
    """The API takes int64 seeds; a browser reads numbers as doubles, so 2**53 + 1 would be
    sent as 2**53: the form says so instead of sending another seed."""
    open_ui(page)
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    fill_form(page, prompt="a big seed", seed=str(2**53 + 1), **QUICK)
    page.click("#submit")
    error = page.locator("#err-seed")
    expect(error).to_be_visible()
    expect(error).to_have_text(
        "is larger than a browser can send exactly (9007199254740991); use the CLI or the API "
        "for it"
    )
    assert posts == []
    page.fill("#seed", str(2**53 - 1))  # the largest it holds exactly is fine
    expect(error).to_be_hidden()


def test_api_validation_error_is_shown_next_to_its_field(page: Page) -> None:
    open_ui(page)

    def corrupt_steps(route: Route) -> None:
        # Get past the page's own checks to see how it shows the daemon's answer.
        body = json.loads(route.request.post_data or "{}")
        route.continue_(post_data=json.dumps({**body, "steps": 151}))

    page.route("**/api/v1/generate", corrupt_steps)
    fill_form(page, prompt="steps out of range", **QUICK)
    page.click("#submit")

    error = page.locator("#err-steps")
    expect(error).to_be_visible()
    expect(error).to_contain_text("between 1 and 150")
    expect(page.locator("#steps")).to_have_attribute("aria-invalid", "true")


def test_settings_persist_across_reload(page: Page) -> None:
    open_ui(page)
    fill_form(page, prompt="remember me", negative_prompt="not this", steps="33", seed="1234")
    page.select_option("#sampler", "dpmpp_2m")
    page.select_option("#schedule", "karras")
    page.click("#lora-card > summary")
    page.click("#add-lora")
    page.fill("#lora-name-0", "my-style")
    page.fill("#lora-weight-0", "0.6")

    page.reload()
    open_ui(page)
    expect(page.locator("#prompt")).to_have_value("remember me")
    expect(page.locator("#negative_prompt")).to_have_value("not this")
    expect(page.locator("#steps")).to_have_value("33")
    expect(page.locator("#seed")).to_have_value("1234")
    expect(page.locator("#sampler")).to_have_value("dpmpp_2m")
    expect(page.locator("#schedule")).to_have_value("karras")
    expect(page.locator("#lora-name-0")).to_have_value("my-style")
    expect(page.locator("#lora-weight-0")).to_have_value("0.6")


def test_sampler_limits_schedules_and_presets_set_size(page: Page) -> None:
    open_ui(page)
    page.select_option("#sampler", "euler")
    page.select_option("#schedule", "karras")
    page.select_option("#sampler", "ddim")  # DDIM offers only the default schedule
    expect(page.locator("#schedule")).to_have_value("default")
    # Picking a sampler selects the schedule GET /samplers recommends for it.
    page.select_option("#sampler", "heun")
    expect(page.locator("#schedule")).to_have_value("karras")
    page.select_option("#sampler", "dpmpp_2m_sde")
    expect(page.locator("#schedule")).to_have_value("exponential")
    page.select_option("#sampler", "euler")
    expect(page.locator("#schedule")).to_have_value("default")
    page.select_option("#size-preset", "512x768")
    expect(page.locator("#width")).to_have_value("512")
    expect(page.locator("#height")).to_have_value("768")
    page.click("#swap-size")
    expect(page.locator("#width")).to_have_value("768")
    expect(page.locator("#height")).to_have_value("512")


def test_hires_fix_card_sends_the_hires_object_and_makes_the_larger_image(
    page: Page, impasto_daemon: Any
) -> None:
    open_ui(page)
    fill_form(page, prompt="a castle, hires ui test", **{**QUICK, "steps": "3"})
    page.click("#hires-card summary")
    page.check("#hires")
    page.fill("#hires_scale", "2")
    page.select_option("#hires_upscaler", "latent-bicubic")
    page.fill("#hires_steps", "2")
    page.fill("#hires_strength", "0.5")
    page.click("#img-card summary")
    page.fill("#extra_noise", "0.2")  # A1111's extra noise goes with a hires pass too
    with page.expect_request("**/api/v1/generate") as sent:
        page.click("#submit")
    body = json.loads(sent.value.post_data or "{}")
    assert body["hires"] == {"scale": 2, "upscaler": "latent-bicubic", "steps": 2, "strength": 0.5}
    assert body["extra_noise"] == 0.2 and "noise_multiplier" not in body  # no image
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "completed", timeout=60_000)
    # Both passes count as one run: 3 + int(2 * 0.5) = 4 UNet calls.
    expect(page.locator("#live-step")).to_have_text("Step 4 / 4")
    page.wait_for_function("document.querySelector('#results img').naturalWidth === 128")
    # The option list is the schema's, and a bad value is shown next to its field.
    options = page.locator("#hires_upscaler option").all_inner_texts()
    assert "lanczos" in options and "latent-nearest-exact" in options
    page.fill("#hires_scale", "9")
    page.click("#submit")
    expect(page.locator("#err-hires_scale")).to_contain_text("between 1 and 4")
    # The daemon's refusal of the size the scale makes is shown on the scale, which sets it.
    fill_form(page, width="1024", height="1024", hires_scale="4")
    page.click("#submit")
    expect(page.locator("#err-hires_scale")).to_contain_text("lower hires.scale or the size")
    expect(page.locator("#hires_scale")).to_be_focused()


def test_ctrl_enter_behind_a_dialog_queues_nothing(page: Page, impasto_daemon: Any) -> None:
    """With the image viewer open, Ctrl+Enter belongs to the dialog, not to the form behind."""
    open_ui(page)
    fill_form(page, prompt="one job only", **QUICK)
    page.click("#submit")
    finished_job(page, impasto_daemon)
    page.locator("#results .result").first.click()
    expect(page.locator("#viewer")).to_be_visible()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.keyboard.press("Control+Enter")
    page.wait_for_timeout(500)
    assert posts == []
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    with page.expect_request("**/api/v1/generate"):
        page.keyboard.press("Control+Enter")


def test_text_cut_to_the_prompts_length_is_said(page: Page) -> None:
    """The prompt's maxlength cuts what is typed in or pasted past it; the field says so."""
    open_ui(page)
    limit = LIMITS["prompt"].max_length
    assert limit
    page.fill("#prompt", "a red circle, ")
    page.focus("#prompt")
    page.keyboard.insert_text("x" * limit)
    assert len(page.input_value("#prompt")) == limit
    error = page.locator("#err-prompt")
    expect(error).to_have_text(
        f"The text was cut to fit: this field takes at most {limit} characters, so the last "
        "14 characters inserted did not go in."
    )
    # A paste that fits says nothing.
    page.fill("#prompt", "")
    page.keyboard.insert_text("a blue square")
    expect(error).to_be_hidden()
    # Pasted from the clipboard (Ctrl+V) over a selection.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.evaluate("n => navigator.clipboard.writeText('y'.repeat(n))", limit + 5)
    page.focus("#prompt")
    page.keyboard.press("Control+A")
    page.keyboard.press("Control+V")
    expect(error).to_contain_text("so the last 5 characters inserted did not go in.")
    assert page.input_value("#prompt") == "y" * limit
