"""Security headers in the real browser (issue #20, item 14): the UI cannot be framed by another
origin, and the UI and the docs page work under their Content-Security-Policy."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.conftest import QUICK, checked_page, fill_form, new_page, serve_html

PANELS = ["generate", "queue", "gallery", "models", "system"]
# Runs before any page script: records every CSP violation the page reports.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def attacker_origin(impasto_daemon: Any) -> Iterator[str]:
    """A page on another loopback port that frames the UI, as a site the user visits would."""
    frame = f"<iframe id='victim' src='{impasto_daemon.url}/' width=800 height=600></iframe>"
    with serve_html(f"<!doctype html><title>attacker</title>{frame}") as origin:
        yield origin


def test_ui_and_docs_send_the_security_headers(impasto_daemon: Any) -> None:
    with httpx.Client(base_url=impasto_daemon.url) as client:
        for path in ["/", "/js/app.js", "/schema", "/schema/openapi.json", "/api/v1/health"]:
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, path
            assert headers["x-frame-options"] == "DENY", path
            assert headers["x-content-type-options"] == "nosniff", path
            assert headers["referrer-policy"] == "no-referrer", path


def test_another_origin_cannot_frame_the_ui(
    browser: Browser, impasto_daemon: Any, attacker_origin: str
) -> None:
    page = new_page(browser, attacker_origin, enforce_csp=True)
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    try:
        page.goto("/")
        page.wait_for_load_state("load")
        [frame] = [f for f in page.frames if f != page.main_frame]
        # The refused frame shows Chromium's error page, never the UI.
        page.wait_for_timeout(500)
        assert frame.url != f"{impasto_daemon.url}/", frame.url
        assert frame.query_selector("#tab-generate") is None
        assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in console), (
            console
        )
    finally:
        page.context.close()


def _violations(page: Page) -> list[str]:
    return list(page.evaluate("window.__csp"))


def _wait_until(page: Page, expression: str, timeout: float = 30.0) -> None:
    """Poll from Python: page.evaluate is not subject to the CSP, wait_for_function's eval is."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"never true: {expression}")
        time.sleep(0.1)


@pytest.fixture
def strict_page(browser: Browser, impasto_daemon: Any) -> Iterator[Page]:
    """The UI with its Content-Security-Policy enforced and every violation recorded."""
    with checked_page(browser, impasto_daemon.url, enforce_csp=True) as page:
        page.add_init_script(RECORD_VIOLATIONS)
        yield page


def test_every_panel_works_under_the_policy(strict_page: Page) -> None:
    page = strict_page
    page.goto("/#generate")
    expect(page.locator("#conn")).to_have_attribute("data-state", "online")
    _wait_until(page, "document.querySelectorAll('#sampler option').length > 1")
    # The defaults note comes from POST /generate/plan (the default model's resolved plan).
    expect(page.locator("#model-defaults-note")).to_contain_text("Using")
    # A job exercises the live preview (data: URL), the result image and the event stream.
    fill_form(page, prompt="csp check", **{**QUICK, "steps": "8"})
    page.click("#submit")
    expect(page.locator("#live")).to_have_attribute("data-state", "completed", timeout=60_000)
    assert int(page.locator("#live").get_attribute("data-previews") or 0) >= 1
    _wait_until(page, "document.querySelector('#results img')?.naturalWidth === 64")
    page.select_option("#model", "sd-tiny-turbo")  # choosing a model applies its defaults
    expect(page.locator("#model-defaults-note")).to_contain_text("Applied")
    for panel in PANELS:
        page.click(f"#tab-{panel}")
        expect(page.locator(f"#panel-{panel}")).to_be_visible()
        page.wait_for_load_state("networkidle")
    _wait_until(page, "document.querySelector('#panel-gallery img')?.naturalWidth > 0")
    # The install panel's catalog (GET /models/catalog) with its builds and licenses.
    page.click("#tab-models")
    page.click("#install-catalog summary")
    expect(page.locator(".catalog-row").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    assert _violations(page) == []


def test_docs_page_works_under_the_policy(browser: Browser, impasto_daemon: Any) -> None:
    page = new_page(browser, impasto_daemon.url, enforce_csp=True)
    page.add_init_script(RECORD_VIOLATIONS)
    try:
        page.goto("/schema")
        # Swagger UI fetched the schema and rendered the operations from it.
        expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
        expect(page.get_by_text("/api/v1/generate").first).to_be_visible()
        assert _violations(page) == []
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()
