"""Choosing a model while the page still asks for the default model's settings keeps the
chosen model's: the earlier answer, arriving later, does not land over it."""

from __future__ import annotations

from playwright.sync_api import Page, Route, expect

from impasto.engine.families import family_defaults


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
