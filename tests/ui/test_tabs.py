"""Many open tabs share the browser's connections to the daemon; a request that hangs ends."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import Browser, Page, Request, Route, expect

from tests.ui.conftest import QUICK, fill_form, open_ui

TABS = 8  # more than the six HTTP/1.1 connections Chromium opens to one host


def test_eight_tabs_all_load_generate_and_show_the_gallery(
    browser: Browser, impasto_daemon: Any
) -> None:
    """Each tab follows the events over a WebSocket, which does not hold one of the host's six
    HTTP connections as an EventSource does: with eight tabs open every one loads, a job runs
    and the gallery fills."""
    context = browser.new_context(base_url=impasto_daemon.url, bypass_csp=True)
    context.set_default_timeout(20_000)
    errors: list[str] = []
    streams: list[str] = []

    def record(request: Request) -> None:
        if "/api/v1/events" in request.url:
            streams.append(request.url)

    try:
        pages: list[Page] = []
        for _ in range(TABS):
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("request", record)
            open_ui(page)
            pages.append(page)
        for page in pages:
            expect(page.locator("#conn")).to_have_attribute("data-state", "online")

        first, last = pages[0], pages[-1]
        fill_form(first, prompt="eight tabs", **QUICK)
        first.click("#submit")
        expect(first.locator("#live")).to_have_attribute("data-state", "completed", timeout=60_000)
        job_id = first.locator("#live").get_attribute("data-job")
        last.click("#tab-gallery")
        expect(last.locator(f".thumb[data-job='{job_id}']")).to_have_count(1)
        # A tab opened now still loads.
        extra = context.new_page()
        extra.on("pageerror", lambda exc: errors.append(str(exc)))
        open_ui(extra)
    finally:
        context.close()
    assert streams == [], "no tab holds an EventSource open"
    assert errors == []


def test_a_request_that_gets_no_answer_ends_with_a_message(page: Page) -> None:
    """A request the daemon never answers fails after the page's time limit (two seconds here)
    with a message, instead of leaving Generate doing nothing for ever."""
    page.add_init_script("window.IMPASTO_API_TIMEOUT_MS = 2000")
    held: list[Route] = []
    open_ui(page)
    page.route("**/api/v1/generate", lambda route: held.append(route))  # never answered
    fill_form(page, prompt="nobody answers", **QUICK)
    started = time.monotonic()
    page.click("#submit")
    error = page.locator("#form-error")
    expect(error).to_have_text(
        "The daemon did not answer within 2 s. It may be busy or stuck: try again, and check "
        "the System panel or the daemon's log if it keeps happening."
    )
    assert held and time.monotonic() - started < 10
    expect(page.locator("#submit")).to_be_enabled()
