"""Connection handling: the token prompt, and catching up on events after a daemon restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, WebSocketRoute, expect

from tests.harness import TINY, wait_status
from tests.ui.conftest import QUICK, fill_form, finished_job, new_page, open_ui


def test_token_is_asked_once_and_kept(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path / "d", token="s3cret-token").start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        job = wait_status(
            client,
            client.post("/api/v1/generate", json={**TINY, "prompt": "token"}).json()["id"],
            {"completed"},
        )
    page = new_page(browser, daemon.url)
    try:
        page.goto("/")
        dialog = page.locator("#token-dialog")
        expect(dialog).to_be_visible()
        page.fill("#token-input", "wrong")
        page.click("#token-form button[type=submit]")
        expect(page.locator("#token-error")).to_be_visible()
        page.fill("#token-input", "s3cret-token")
        page.click("#token-form button[type=submit]")
        expect(dialog).to_be_hidden()
        expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        assert page.evaluate("JSON.parse(localStorage.getItem('impasto.token'))") == "s3cret-token"

        # Images cannot send headers; they carry ?token= and still load.
        page.click("#tab-gallery")
        page.wait_for_function(
            "id => document.querySelector(`.thumb[data-job='${id}'] img`)?.naturalWidth > 0",
            arg=job["id"],
        )
        page.reload()
        open_ui(page)
        expect(dialog).to_be_hidden()
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_token_in_the_address_is_used_and_taken_out_of_it(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    """The tray opens ``/?token=...``: the page signs in with it, without asking, and takes it
    out of the address bar (history, bookmarks, a shared screen)."""
    daemon = daemon_factory(tmp_path / "d", token="s3cret-token").start()
    page = new_page(browser, daemon.url)
    refused: list[str] = []
    page.on("response", lambda r: refused.append(r.url) if r.status == 401 else None)
    try:
        page.goto("/?token=s3cret-token#models")
        expect(page.locator("#conn")).to_have_attribute("data-state", "online")
        expect(page.locator("#panel-models")).to_be_visible()
        expect(page.locator("#token-dialog")).to_be_hidden()
        assert page.url == f"{daemon.url}/#models"
        assert page.evaluate("JSON.parse(localStorage.getItem('impasto.token'))") == "s3cret-token"
        assert refused == []
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_reconnects_after_restart_and_catches_up_by_sequence(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    root = tmp_path / "d"
    first = daemon_factory(root, preview_every=1).start()
    first.wait_worker_ready()
    page = new_page(browser, first.url)
    # The page follows the events over a WebSocket; while `away` is set it cannot connect.
    away = False
    streams: list[str] = []

    def stream(ws: WebSocketRoute) -> None:
        streams.append(ws.url)
        if away:
            ws.close(code=1011, reason="kept away by the test")
        else:
            ws.connect_to_server()

    page.route_web_socket("**/api/v1/ws**", stream)
    try:
        open_ui(page)
        # One job while connected gives the page a sequence number to resume from.
        fill_form(page, prompt="before restart", **QUICK)
        page.click("#submit")
        seen = finished_job(page, first)["id"]
        expect(page.locator("#results")).to_have_attribute("data-job", seen)

        # The page's next job waits in a paused queue while the page is kept away, the daemon
        # restarts, and the job runs without the page watching.
        with first.client() as client:
            client.post("/api/v1/queue/pause")
        fill_form(page, prompt="while the page was away")
        page.click("#submit")
        live = page.locator("#live")
        expect(live).to_have_attribute("data-state", "queued")
        missed = str(live.get_attribute("data-job"))
        away = True
        first.stop()
        expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
        expect(page.locator("#conn")).to_contain_text("Reconnecting")
        expect(live).to_have_attribute("data-state", "offline")
        second = daemon_factory(root, port=first.port, preview_every=1).start()
        second.wait_worker_ready()
        with second.client() as client:
            client.post("/api/v1/queue/resume")
            wait_status(client, missed, {"completed"})
        away = False

        expect(page.locator("#conn")).to_have_attribute("data-state", "online", timeout=20_000)
        # The page catches up (not a reload): the missed job's image goes up on its card.
        expect(page.locator("#results")).to_have_attribute("data-job", missed, timeout=20_000)
        expect(live).to_have_attribute("data-state", "completed")
        assert any("since=" in url for url in streams[1:]), streams
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()
