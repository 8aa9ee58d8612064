"""The UI shows a daemon that cannot run jobs, and does not re-read the queue on every event."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, expect

from tests.harness import TINY
from tests.ui.conftest import new_page


def test_workers_that_cannot_start_show_as_an_error(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    # A provider this machine lacks: every worker start dies before it is ready.
    daemon = daemon_factory(tmp_path / "d", workers=1, provider="migraphx").start()
    page = new_page(browser, daemon.url)
    try:
        page.goto("/")
        conn = page.locator("#conn")
        expect(conn).to_have_attribute("data-state", "error", timeout=90_000)
        expect(conn).to_contain_text("Cannot run jobs")
        assert "cannot start" in (conn.get_attribute("title") or "")
        expect(page.locator(".toast", has_text="cannot run jobs")).to_be_visible()
    finally:
        page.context.close()


def test_a_stream_of_job_events_is_one_queue_read_a_second(
    browser: Browser, daemon_factory: Any, tmp_path: Path
) -> None:
    daemon = daemon_factory(tmp_path / "d", workers=1, rate_limit=0).start()
    page = new_page(browser, daemon.url)
    reads: list[str] = []
    page.on("request", lambda r: "/api/v1/queue?" in r.url and reads.append(r.url))
    try:
        page.goto("/#queue")
        page.wait_for_selector("#conn[data-state=online]")
        with daemon.client() as c:
            c.post("/api/v1/queue/pause")
            time.sleep(1.5)
            reads.clear()
            # 16 "queued" events, one every 250 ms: the old panel read the queue after each.
            for i in range(16):
                c.post("/api/v1/generate", json={**TINY, "prompt": f"job {i}"})
                time.sleep(0.25)
        expect(page.locator("#queue-count")).to_have_text("16")
        assert 2 <= len(reads) <= 7, reads
    finally:
        page.context.close()
