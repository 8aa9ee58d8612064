"""The Queue panel: run order, pause/resume, priority changes and cancel."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.harness import wait_status
from tests.ui.conftest import QUICK, fill_form, open_ui


def submit(page: Page, prompt: str) -> None:
    page.click("#tab-generate")
    fill_form(page, prompt=prompt, **QUICK)
    page.click("#submit")


def test_queue_order_priority_cancel_pause_resume(page: Page, impasto_daemon: Any) -> None:
    open_ui(page, "queue")
    page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Paused")
    try:
        submit(page, "queue first")
        submit(page, "queue second")
        submit(page, "queue third")
        page.click("#tab-queue")
        items = page.locator(".queue-item")
        expect(items).to_have_count(3)
        expect(page.locator("#queue-count")).to_have_text("3")
        expect(items.locator(".q-prompt")).to_have_text(
            ["queue first", "queue second", "queue third"]
        )

        # Raising the third job's priority moves it to the front.
        third = items.nth(2)
        third_id = third.get_attribute("data-job")
        third.locator(".prio-input").fill("10")
        third.locator(".prio-input").press("Enter")
        expect(items.locator(".q-prompt")).to_have_text(
            ["queue third", "queue first", "queue second"]
        )
        expect(items.first.locator(".status")).to_have_text("#1")

        second = items.filter(has_text="queue second")
        second_id = second.get_attribute("data-job")
        second.get_by_role("button", name="Cancel job: queue second").click()
        expect(items).to_have_count(2)
    finally:
        page.click("#tab-queue")
        page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Running")
    expect(page.locator(".queue-item")).to_have_count(0, timeout=60_000)
    expect(page.locator("#queue-empty")).to_be_visible()
    with impasto_daemon.client() as client:
        assert wait_status(client, str(third_id), {"completed"})["priority"] == 10
        assert client.get(f"/api/v1/generate/{second_id}").json()["status"] == "cancelled"
