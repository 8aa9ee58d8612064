"""What a new user trips on in the UI: stale installs, emoji icons, paths, RAM, requests."""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.harness import REPO, Daemon
from tests.ui.conftest import open_ui


@pytest.fixture(scope="module")
def impasto_daemon(lived_in_daemon: Daemon) -> Daemon:
    """A finished image and a failed install."""
    return lived_in_daemon


def test_the_page_fetches_the_queue_once_on_load(page: Page) -> None:
    queue_requests: list[str] = []
    page.on(
        "request",
        lambda r: (
            urlsplit(r.url).path.rstrip("/") == "/api/v1/queue" and queue_requests.append(r.url)
        ),
    )
    open_ui(page)
    page.wait_for_function("document.querySelector('#queue-state').textContent !== ''")
    page.wait_for_timeout(1000)
    assert len(queue_requests) == 1, queue_requests


def test_a_failed_install_can_be_dismissed_for_good(page: Page, impasto_daemon: Daemon) -> None:
    open_ui(page, "models")
    failed = page.locator(".install[data-status=failed]")
    expect(failed).to_have_count(1)
    expect(failed.locator(".field-error[role=alert]")).to_contain_text("cannot reach 127.0.0.1")
    failed.get_by_role("button", name="Dismiss").click()
    expect(failed).to_have_count(0)
    page.reload()
    page.wait_for_selector("#conn[data-state=online]")
    expect(page.locator(".model").first).to_be_visible()
    expect(page.locator(".install")).to_have_count(0)
    with impasto_daemon.client() as client:
        assert client.get("/api/v1/models/installs").json() == []


def test_icons_ship_with_the_ui_and_cards_show_no_local_paths(page: Page) -> None:
    open_ui(page)
    for button in ("#seed-random", "#seed-reuse"):
        assert page.locator(f"{button} svg").count() == 1
        assert page.locator(button).inner_text().strip() == ""  # no emoji left to miss a font
    page.click("#tab-models")
    expect(page.locator(".model").first).to_be_visible()
    cards = page.locator("#models-list").inner_text()
    assert str(REPO) not in cards and "/models/tiny" not in cards


def test_system_says_which_memory_figure_is_used_and_which_is_free(page: Page) -> None:
    open_ui(page, "system")
    ram = page.locator(".meter").filter(has_text="System RAM").locator(".meter-value")
    expect(ram).to_have_text(re.compile(r"^\S+ \w+ used of \S+ \w+ \(\S+ \w+ free\)$"))


def test_system_shows_when_a_loaded_model_unloads(page: Page, impasto_daemon: Daemon) -> None:
    """The daemon sends the time as ISO 8601 with microseconds; the page shows a clock time."""
    with impasto_daemon.client() as client:
        model = client.get("/api/v1/models").json()[0]["id"]
        assert client.post(f"/api/v1/models/{model}/load", params={"keep_alive": 600}).is_success
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            loaded = client.get("/api/v1/system").json()["loaded_models"]
            if any(held["model"] == model for held in loaded):
                break
            time.sleep(0.1)
    open_ui(page, "system")
    row = page.locator("#system-body tr").filter(has_text=model)
    expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^\d{1,2}:\d{2}:\d{2}"))
