"""Choosing a model: its defaults go into the form and the note under the menu says so, for as
long as the form holds them; a late answer for the default model does not undo a choice."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect

from impasto.engine.families import family_defaults
from tests.ui.conftest import open_ui


def test_a_late_answer_for_the_default_model_does_not_undo_a_choice(page: Page) -> None:
    held: list[Route] = []
    page.route("**/api/v1/generate/plan", lambda route: held.append(route))  # held for now
    page.goto("/#generate")
    page.wait_for_function("document.querySelectorAll('#model option').length > 1")
    page.select_option("#model", "sd-tiny-lcm")
    note = page.locator("#model-defaults-note")
    expect(note).to_contain_text("Applied sd-tiny-lcm's defaults")
    page.wait_for_timeout(200)
    assert held, "the page asked nothing of /generate/plan at load"
    with page.expect_response("**/api/v1/generate/plan"):
        held[0].continue_()  # the default model's settings arrive now, after the choice
    page.wait_for_timeout(300)
    lcm = family_defaults("lcm")
    expect(page.locator("#steps")).to_have_value(str(lcm.steps))
    expect(page.locator("#sampler")).to_have_value(lcm.sampler)
    expect(note).to_contain_text("Applied sd-tiny-lcm's defaults")


def test_the_defaults_note_goes_once_the_user_changes_those_values(page: Page) -> None:
    open_ui(page)
    page.select_option("#model", "sd-tiny-turbo")
    note = page.locator("#model-defaults-note")
    # One step, not "1 steps".
    expect(note).to_have_text(
        "Applied sd-tiny-turbo's defaults: 256×256, 1 step, CFG 0 (no guidance), Euler a."
    )
    page.fill("#steps", "3")
    expect(note).to_have_text("")
    page.fill("#steps", "1")  # the model's values again: the note is true again
    expect(note).to_contain_text("Applied sd-tiny-turbo's defaults")
    page.click("#swap-size")  # 256 x 256 swapped is the same size
    expect(note).to_contain_text("Applied sd-tiny-turbo's defaults")
    page.select_option("#size-preset", "512x768")
    expect(note).to_have_text("")
    page.select_option("#model", "sd-tiny-lcm")
    expect(note).to_contain_text("Applied sd-tiny-lcm's defaults")
    page.select_option("#sampler", "euler")
    expect(note).to_have_text("")


def test_a_one_step_model_card_says_1_step(page: Page) -> None:
    open_ui(page, "models")
    card = page.locator(".model[data-model='sd-tiny-turbo']")
    expect(card).to_contain_text("256×256, 1 step, CFG 0")
    expect(page.locator(".model[data-model='sd-tiny']")).to_contain_text("20 steps")
