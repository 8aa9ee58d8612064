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


def test_clear_queue_asks_then_cancels_every_waiting_job(page: Page, impasto_daemon: Any) -> None:
    open_ui(page, "queue")
    clear = page.locator("#queue-clear")
    expect(clear).to_be_disabled()
    page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Paused")
    try:
        for prompt in ("clear first", "clear second", "clear third"):
            submit(page, prompt)
        page.click("#tab-queue")
        items = page.locator(".queue-item")
        expect(items).to_have_count(3)
        expect(clear).to_be_enabled()
        ids = [str(items.nth(i).get_attribute("data-job")) for i in range(3)]

        asked: list[str] = []

        def say_no(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.dismiss()

        page.once("dialog", say_no)
        clear.click()
        expect(items).to_have_count(3)
        assert asked == ["Cancel 3 waiting jobs? A running job goes on."]

        page.once("dialog", lambda dialog: dialog.accept())
        clear.click()
        expect(page.locator(".toast")).to_contain_text(["Cancelled 3 queued jobs."])
        expect(items).to_have_count(0)
        expect(page.locator("#queue-count")).to_be_hidden()
        expect(clear).to_be_disabled()
    finally:
        page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Running")
    with impasto_daemon.client() as client:
        for job_id in ids:
            assert client.get(f"/api/v1/generate/{job_id}").json()["status"] == "cancelled"
