"""The live card follows this tab's jobs: not other clients', through a paused queue, a deleted
image and a daemon that goes away mid-job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.harness import TINY, wait_gone, wait_status
from tests.ui.conftest import QUICK, fill_form, finished_job, new_page, open_ui

SLOW = {"width": "512", "height": "512", "steps": "150"}  # tens of seconds on the tiny model
STEPPING = "/Step [1-9]/.test(document.querySelector('#live-step').textContent)"


def test_another_clients_job_does_not_take_the_card_or_the_seed(
    page: Page, impasto_daemon: Any
) -> None:
    """Tab A's result stays on its card and ♻ gives A's seed while and after another client's
    job (seed 777) runs; that job shows as one line, not as A's."""
    open_ui(page)
    fill_form(page, prompt="mine, a random seed", seed="-1", **QUICK)
    page.click("#submit")
    mine = finished_job(page, impasto_daemon)
    my_seed = mine["results"][0]["seed"]
    assert my_seed != 777

    with impasto_daemon.client() as client:
        body = {**TINY, "prompt": "theirs", "seed": 777, "steps": 60, "width": 256, "height": 256}
        theirs = client.post("/api/v1/generate", json=body).json()["id"]
        other = page.locator("#live-other")
        expect(other).to_be_visible(timeout=30_000)
        expect(other).to_have_attribute("data-job", theirs)
        expect(other).to_contain_text("A job from elsewhere is running")
        wait_status(client, theirs, {"completed"})
    expect(other).to_be_hidden()
    live = page.locator("#live")
    expect(live).to_have_attribute("data-state", "completed")
    expect(live).to_have_attribute("data-job", mine["id"])
    expect(page.locator("#results")).to_have_attribute("data-job", mine["id"])
    page.click("#seed-reuse")
    expect(page.locator("#seed")).to_have_value(str(my_seed))

    # A reload keeps following this tab's own job (its result and its seed).
    page.reload()
    open_ui(page)
    expect(page.locator("#results")).to_have_attribute("data-job", mine["id"])
    page.fill("#seed", "-1")
    page.click("#seed-reuse")
    expect(page.locator("#seed")).to_have_value(str(my_seed))


def test_only_the_title_and_state_are_announced(page: Page) -> None:
    """Screen readers hear the card's title and state, not every step of the progress."""
    open_ui(page)
    regions = page.evaluate(
        "[...document.querySelectorAll('#live [aria-live], #live[aria-live]')].map(e => e.id)"
    )
    assert regions == ["live-status"]
    for ticking in ("#live-step", "#live-pct", "#live-eta", "#live-bar", "#live-preview"):
        inside = page.evaluate(f"!!document.querySelector('{ticking}').closest('[aria-live]')")
        assert not inside, f"{ticking} is inside a live region"
    title = "document.querySelector('#live-status').contains(document.querySelector('#live-title'))"
    assert page.evaluate(title) is True


def test_a_paused_queue_says_so_on_the_card_and_resumes_from_it(
    page: Page, impasto_daemon: Any
) -> None:
    open_ui(page)
    with impasto_daemon.client() as client:
        client.post("/api/v1/queue/pause")
    try:
        paused = page.locator("#live-paused")
        expect(paused).to_be_visible()
        expect(paused).to_contain_text("Queue paused")
        fill_form(page, prompt="waits for a resume", **QUICK)
        page.click("#submit")
        expect(page.locator("#live")).to_have_attribute("data-state", "queued")
        expect(page.locator("#live-sub")).to_have_text("Waiting: the queue is paused (position 1).")
        page.click("#live-resume")
        expect(paused).to_be_hidden()
        job = finished_job(page, impasto_daemon)
        assert job["request"]["prompt"] == "waits for a resume"
    finally:
        with impasto_daemon.client() as client:
            client.post("/api/v1/queue/resume")


def test_a_deleted_image_leaves_the_card(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="deleted soon", **QUICK)
    page.click("#submit")
    job = finished_job(page, impasto_daemon)
    expect(page.locator("#results img")).to_have_count(1)
    with impasto_daemon.client() as client:
        assert client.delete(f"/api/v1/generate/{job['id']}").status_code == 204
    expect(page.locator("#live")).to_have_attribute("data-state", "deleted")
    expect(page.locator("#live-title")).to_have_text("Deleted")
    expect(page.locator("#results img")).to_have_count(0)
    # Opening a job that is gone says so (no unhandled rejection: the fixture checks).
    page.evaluate("id => window.impasto.viewer.openJob(id, 0)", job["id"])
    expect(page.locator(".toast.error")).to_have_text(
        "That image is no longer there: it was deleted."
    )
    expect(page.locator("#viewer")).to_be_hidden()


def test_the_card_says_the_daemon_is_away_then_follows_the_requeued_job(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    """Killed mid-job, the daemon leaves the card saying so (no live Cancel, no frozen step);
    a submit meanwhile says the daemon is unreachable, which clears when it is back; the job,
    queued again on restart, runs on the card from its start, not as "Position 1"."""
    root = tmp_path / "d"
    first = daemon_factory(root).start()
    first.wait_worker_ready()
    page = new_page(browser, first.url)
    try:
        open_ui(page)
        fill_form(page, prompt="outlives its daemon", **SLOW)
        page.click("#submit")
        live = page.locator("#live")
        expect(live).to_have_attribute("data-state", "running", timeout=30_000)
        page.wait_for_function(STEPPING)
        job_id = str(live.get_attribute("data-job"))
        workers = [w["pid"] for w in first.workers()]
        first.kill()
        wait_gone(workers)

        expect(live).to_have_attribute("data-state", "offline")
        expect(page.locator("#live-title")).to_have_text("Daemon unavailable")
        expect(page.locator("#live-cancel")).to_be_hidden()
        expect(page.locator("#live-step")).to_have_text("Step –")
        page.click("#submit")
        error = page.locator("#form-error")
        expect(error).to_contain_text("not reachable")

        second = daemon_factory(root, port=first.port).start()
        expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=30_000)
        expect(error).to_be_hidden()
        expect(live).to_have_attribute("data-job", job_id)
        expect(live).to_have_attribute("data-state", "running", timeout=60_000)
        page.wait_for_function(STEPPING)
        expect(page.locator("#live-title")).to_have_text("Generating…")
        expect(page.locator("#live-sub")).not_to_contain_text("Position")
        page.click("#live-cancel")
        expect(live).to_have_attribute("data-state", "cancelled", timeout=30_000)
        with second.client() as client:
            assert client.get(f"/api/v1/generate/{job_id}").json()["attempts"] == 1
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()
