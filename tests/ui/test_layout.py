"""Every panel at desktop and phone size: no sideways scrolling, labelled controls, screenshots."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import TINY, wait_status
from tests.ui.conftest import DESKTOP, PHONE, fill_form, new_page, open_ui, screenshot

PANELS = ["generate", "queue", "gallery", "models", "system"]

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
  .map((el) => el.outerHTML.slice(0, 120))"""


@pytest.fixture(scope="module")
def with_history(impasto_daemon: Any) -> Any:
    """A few finished images so the gallery and viewer have something to show."""
    with impasto_daemon.client() as client:
        for prompt in [
            "a lighthouse at dusk",
            "a cat in a garden",
            "mountains in fog",
            "a red bicycle",
        ]:
            body = {**TINY, "prompt": prompt, "width": 128, "height": 128, "steps": 6}
            wait_status(
                client, client.post("/api/v1/generate", json=body).json()["id"], {"completed"}
            )
    return impasto_daemon


@pytest.mark.parametrize(
    ("size", "scheme"), [("desktop", "light"), ("phone", "light"), ("desktop", "dark")]
)
def test_panels_fit_the_viewport_and_every_control_is_labelled(
    browser: Browser, with_history: Any, size: str, scheme: str
) -> None:
    page = new_page(browser, with_history.url, DESKTOP if size == "desktop" else PHONE, scheme)
    name = size if scheme == "light" else f"{size}-{scheme}"
    try:
        open_ui(page)
        fill_form(
            page,
            prompt="a lighthouse on a cliff at dusk, oil painting, thick brush strokes",
            width="128",
            height="128",
            steps="8",
        )
        page.click("#submit")
        expect(page.locator("#live")).to_have_attribute("data-state", "completed", timeout=60_000)
        page.wait_for_function("document.querySelector('#results img')?.naturalWidth > 0")
        for panel in PANELS:
            page.click(f"#tab-{panel}")
            expect(page.locator(f"#panel-{panel}")).to_be_visible()
            if panel == "gallery":
                page.wait_for_function(
                    "[...document.querySelectorAll('.thumb img')].some(i => i.naturalWidth)"
                )
            if panel == "system":
                expect(page.locator("#sys-provider")).not_to_be_empty()
            if panel == "models":
                expect(page.locator(".model").first).to_be_visible()
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(150)
            scroll = page.evaluate(
                "[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
            )
            assert scroll[0] <= scroll[1], f"{panel} scrolls sideways at {size}: {scroll}"
            assert page.evaluate(UNLABELLED) == [], f"unlabelled controls on {panel}"
            assert screenshot(page, f"{name}-{panel}").stat().st_size > 0
        page.click("#tab-gallery")
        page.locator(".thumb").first.click()
        expect(page.locator("#viewer")).to_be_visible()
        page.wait_for_function("document.querySelector('#viewer-img').naturalWidth > 0")
        screenshot(page, f"{name}-viewer")
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_phone_tabs_sit_at_the_bottom(browser: Browser, impasto_daemon: Any) -> None:
    page = new_page(browser, impasto_daemon.url, PHONE)
    try:
        open_ui(page)
        tabs = page.locator("[role=tablist]").bounding_box()
        assert tabs and tabs["y"] + tabs["height"] == pytest.approx(PHONE["height"], abs=1)
    finally:
        page.context.close()


def test_tabs_work_from_the_keyboard(page: Page) -> None:
    open_ui(page)
    page.focus("#tab-generate")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-queue")).to_be_focused()
    expect(page.locator("#panel-queue")).to_be_visible()
    page.keyboard.press("End")
    expect(page.locator("#panel-system")).to_be_visible()
    page.keyboard.press("Home")
    expect(page.locator("#panel-generate")).to_be_visible()
    # The open tab is remembered.
    page.click("#tab-models")
    page.goto("/")
    expect(page.locator("#panel-models")).to_be_visible()


SQUEEZED = """() => {
    document.querySelectorAll('details').forEach((d) => { d.open = true; });
    return [...document.querySelectorAll('input[type=checkbox], input[type=radio]')]
        .filter((e) => e.offsetParent)
        .map((e) => [e.id, e.getBoundingClientRect().width, e.getBoundingClientRect().height])
        .filter(([, w, h]) => w < 13 || h < 13);
}"""


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_check_boxes_keep_their_size_beside_a_long_label(
    browser: Browser, impasto_daemon: Any, size: str
) -> None:
    """A box whose label wraps was squeezed by its flex row to a sliver a few pixels wide."""
    page = new_page(browser, impasto_daemon.url, DESKTOP if size == "desktop" else PHONE)
    try:
        open_ui(page)
        for panel in PANELS:
            page.click(f"#tab-{panel}")
            expect(page.locator(f"#panel-{panel}")).to_be_visible()
            assert page.evaluate(SQUEEZED) == [], f"squeezed boxes on {panel} at {size}"
    finally:
        page.context.close()
