"""The Speed card sends DeepCache's cache_interval and the decoder, and shows a refusal."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.ui.conftest import QUICK, fill_form, finished_job, open_ui


def test_speed_card_sends_cache_interval_and_decoder(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="a lighthouse, deepcache from the ui", **QUICK)
    page.click("#speed-card summary")
    page.select_option("#cache_interval", "-1")
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    assert job["request"]["cache_interval"] == -1 and job["request"]["decoder"] == "full"
    assert job["plan"]["cache_interval"] == 3  # SD 1.x's recommended interval

    # No TAESD is installed here: the daemon's refusal is shown on the decoder field.
    page.select_option("#decoder", "fast")
    page.click("#submit")
    error = page.locator("#err-decoder")
    expect(error).to_be_visible()
    expect(error).to_contain_text("impasto pull taesd")
