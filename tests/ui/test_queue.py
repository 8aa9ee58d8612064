"""The Queue panel: run order, pause/resume, priority changes, cancel, clear and failed jobs."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image
from playwright.sync_api import Page, expect

from tests.harness import TINY, wait_status
from tests.ui.conftest import QUICK, fill_form, open_ui


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    return buf.getvalue()


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


def test_a_failed_job_is_listed_with_its_reason_then_retried_or_dismissed(
    page: Page, impasto_daemon: Any
) -> None:
    """A job that failed while nobody watched: the Queue panel lists it with the reason; Retry
    queues the same request again, Dismiss deletes the record."""
    with impasto_daemon.client() as client:
        upload = client.post("/api/v1/images", files={"file": ("i.png", _png())}).json()
        client.post("/api/v1/queue/pause")
        try:
            body = {
                "prompt": "doomed by a lost image",
                **TINY,
                "init_image": f"upload:{upload['id']}",
            }
            job_id = client.post("/api/v1/generate", json=body).json()["id"]
            for stored in impasto_daemon.data_dir.glob(f"uploads/{upload['id']}*"):
                stored.unlink()
        finally:
            client.post("/api/v1/queue/resume")
        assert wait_status(client, job_id, {"failed", "completed"})["status"] == "failed"

    open_ui(page, "queue")
    row = page.locator(f"#failed-list .queue-item[data-job='{job_id}']")
    expect(row).to_be_visible()
    expect(row.locator(".q-prompt")).to_have_text("doomed by a lost image")
    expect(row.locator(".q-error")).to_contain_text("is no longer in the uploads folder")

    # Retry sends the same request: with its image still gone, the daemon says so at once;
    # with the image back, the job is queued again and runs.
    retry = row.get_by_role("button", name="Retry: doomed by a lost image")
    retry.click()
    expect(page.locator(".toast.error")).to_contain_text("init_image")
    (impasto_daemon.data_dir / "uploads" / f"{upload['id']}.png").write_bytes(_png())
    retry.click()
    expect(page.locator(".toast").last).to_have_text("Queued again.")
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "completed", timeout=60_000)
    with impasto_daemon.client() as client:
        again = client.get(f"/api/v1/generate/{live.get_attribute('data-job')}").json()
    assert again["id"] != job_id and again["request"]["prompt"] == "doomed by a lost image"

    row.get_by_role("button", name="Dismiss: doomed by a lost image").click()
    expect(row).to_have_count(0)
    with impasto_daemon.client() as client:
        assert client.get(f"/api/v1/generate/{job_id}").status_code == 404


def test_editing_a_priority_keeps_focus_while_the_queue_changes(
    page: Page, impasto_daemon: Any
) -> None:
    """The list is updated in place: jobs arriving or moving while a keyboard user types a
    priority leave the focus and what was typed where they were, even when that row moves."""
    open_ui(page, "queue")
    page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Paused")
    items = page.locator(".queue-item")
    try:
        with impasto_daemon.client() as client:
            first, _, third = (
                client.post("/api/v1/generate", json={**TINY, "prompt": f"kept {n}"}).json()["id"]
                for n in ("first", "second", "third")
            )
            expect(items).to_have_count(3)
            field = page.locator(f"#prio-{third}")
            field.focus()
            page.keyboard.press("Control+a")
            page.keyboard.type("7")
            # Another client moves the first job last (the row being edited moves up) and
            # queues one more: the list changes twice while the field is being edited.
            client.patch(f"/api/v1/generate/{first}", json={"priority": -5})
            expect(items.locator(".q-prompt")).to_have_text(
                ["kept second", "kept third", "kept first"]
            )
            client.post("/api/v1/generate", json={**TINY, "prompt": "kept fourth"})
            expect(items).to_have_count(4)
        expect(field).to_be_focused()
        expect(field).to_have_value("7")
        page.keyboard.press("Enter")  # commits it: the job moves to the front, focus stays
        expect(items.locator(".q-prompt")).to_have_text(
            ["kept third", "kept second", "kept fourth", "kept first"]
        )
        expect(field).to_be_focused()
    finally:
        page.click("#queue-toggle")
    expect(page.locator("#queue-state")).to_have_text("Running")
    expect(items).to_have_count(0, timeout=60_000)
