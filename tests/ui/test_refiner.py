"""SDXL refiners: chosen under Refiner for an SDXL model, never as the model to generate with."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui

REFINER = "sdxl-tiny-refiner"


def test_a_refiner_is_offered_as_a_refiner_only(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    models = page.locator("#model option").evaluate_all("os => os.map(o => o.value)")
    assert "sdxl-tiny" in models and REFINER not in models
    # Its card on the Models panel says what it is, without "Use for generation".
    page.click("#tab-models")
    card = page.locator(f".model[data-model='{REFINER}']")
    expect(card).to_be_visible()
    expect(card.get_by_role("button", name=f"Use for generation: {REFINER}")).to_have_count(0)
    expect(card.locator(".model-refiner-note")).to_contain_text("choose it under Refiner")
    sdxl = page.locator(".model[data-model='sdxl-tiny']")
    expect(sdxl.get_by_role("button", name="Use for generation: sdxl-tiny")).to_have_count(1)

    # The Refiner field shows for an SDXL model only.
    page.click("#tab-generate")
    field = page.locator("#refiner-field")
    expect(field).to_be_hidden()
    page.select_option("#model", "sdxl-tiny")
    expect(field).to_be_visible()
    choices = page.locator("#refiner option").evaluate_all("os => os.map(o => o.value)")
    assert choices == ["", REFINER]
    expect(page.locator("#refiner_switch")).to_have_value("0.8")
    expect(page.locator("#refiner_switch")).to_be_disabled()  # no refiner chosen
    page.select_option("#model", "sd-tiny")
    expect(field).to_be_hidden()


def test_the_refiner_and_its_switch_go_with_the_request(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    page.select_option("#model", "sdxl-tiny")
    fill_form(page, prompt="a refined square", **QUICK)
    page.select_option("#refiner", REFINER)
    page.fill("#refiner_switch", "0.5")
    with page.expect_request("**/api/v1/generate") as sent:
        page.click("#submit")
    body = json.loads(sent.value.post_data or "{}")
    assert (body["refiner"], body["refiner_switch"]) == (REFINER, 0.5)
    job = finished_job(page, impasto_daemon)
    assert (job["request"]["refiner"], job["request"]["refiner_switch"]) == (REFINER, 0.5)
    # Out of range is refused on its field before anything is sent.
    page.fill("#refiner_switch", "1.5")
    page.click("#submit")
    expect(page.locator("#err-refiner_switch")).to_contain_text("between 0 and 1")
    # Back to no refiner: nothing of it is sent.
    page.fill("#refiner_switch", "0.8")
    page.select_option("#refiner", "")
    with page.expect_request("**/api/v1/generate") as sent:
        page.click("#submit")
    body = json.loads(sent.value.post_data or "{}")
    assert "refiner" not in body and "refiner_switch" not in body
    expect(page.locator("#live")).not_to_have_attribute("data-job", job["id"], timeout=30_000)
    assert finished_job(page, impasto_daemon)["request"]["refiner"] is None
