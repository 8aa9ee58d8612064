"""Playwright fixtures: Debian's Chromium (never a downloaded browser) driving the bundled UI."""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.harness import REPO, TINY, Daemon, free_port, wait_status
from tests.tools import require_browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = REPO / "build" / "ui-screenshots"
# Small, quick jobs on the tiny model; tests raise steps where they need time to watch.
QUICK = {"width": "64", "height": "64", "steps": "4", "cfg_scale": "5"}


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the UI tests (the system's; never a downloaded one).

    Package scope: Playwright's sync API keeps an event loop on this thread while it runs, which
    would break later tests that call ``asyncio.run``.
    """
    executable = require_browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class PageErrors(list[str]):
    """Uncaught exceptions in the page; a test fails if any happened."""


def new_page(
    browser: Browser,
    base_url: str,
    viewport: dict[str, int] = DESKTOP,
    color_scheme: str = "light",
    enforce_csp: bool = False,
) -> Page:
    """A fresh browser context (own localStorage) on the daemon, with errors collected.

    Playwright polls ``wait_for_function`` predicates with ``eval``, which the daemon's
    Content-Security-Policy forbids, so pages bypass it unless ``enforce_csp`` (test_csp.py).
    """
    context = browser.new_context(
        base_url=base_url,
        viewport=viewport,
        color_scheme=color_scheme,  # type: ignore[arg-type]
        bypass_csp=not enforce_csp,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors = PageErrors()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


@contextlib.contextmanager
def checked_page(browser: Browser, url: str, **options: Any) -> Iterator[Page]:
    """``new_page``, closed on exit; fails if the page had uncaught errors by then."""
    page = new_page(browser, url, **options)
    yield page
    errors = page.errors  # type: ignore[attr-defined]
    page.context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def page(browser: Browser, impasto_daemon: Any) -> Iterator[Page]:
    """The UI at 1280x800 on the module's daemon; fails the test on uncaught page errors."""
    with checked_page(browser, impasto_daemon.url) as page:
        yield page


def open_ui(page: Page, tab: str = "generate") -> Page:
    """Load the page and wait until the event stream is connected and models are listed."""
    page.goto(f"/#{tab}")
    page.wait_for_selector("#conn[data-state=online]")
    page.wait_for_function("document.querySelectorAll('#sampler option').length > 1")
    return page


# The job finished_job last gave for a page: the live card shows it, completed, until the
# page's next job takes its place (after a reload too, where the card shows the last job again).
_LAST_JOB: weakref.WeakKeyDictionary[Page, str] = weakref.WeakKeyDictionary()


def finished_job(page: Page, daemon: Any) -> dict[str, Any]:
    """The job the page just submitted, once the live card says it completed, as the API has it."""
    live = page.locator("#live")
    last = _LAST_JOB.get(page)
    if last is not None:
        expect(live).not_to_have_attribute("data-job", last, timeout=60_000)
    expect(live).to_have_attribute("data-state", "completed", timeout=60_000)
    job_id = str(live.get_attribute("data-job"))
    _LAST_JOB[page] = job_id
    with daemon.client() as client:
        return wait_status(client, job_id, {"completed"})


def fill_form(page: Page, **values: str) -> None:
    """Type values into the Generate form's fields (ids are the API's field names)."""
    for name, value in values.items():
        page.fill(f"#{name}", value)


def screenshot(page: Page, name: str) -> Path:
    """Save a screenshot under build/ui-screenshots/ and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@pytest.fixture(scope="module")
def lived_in_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a finished image and a failed install (its hub is unreachable)."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path_factory.mktemp("lived-in"), hf_endpoint=unreachable).start()
    daemon.wait_worker_ready()
    with daemon.client() as client:
        job = client.post("/api/v1/generate", json={**TINY, "prompt": "a lighthouse"}).json()
        wait_status(client, job["id"], {"completed"})
        install = client.post("/api/v1/models/install", json={"source": "someone/model"}).json()
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/models/installs/{install['id']}").json()["status"] != "failed":
            assert time.monotonic() < deadline, "the install did not fail"
            time.sleep(0.1)
    yield daemon
    daemon.stop()


@contextlib.contextmanager
def serve_html(body: str, host: str = "127.0.0.1") -> Iterator[str]:
    """Another web site on this machine: one page, ``body``, served from a loopback port (a
    real server: a page the browser makes up is not in the loopback address space). Yields
    its origin as ``http://HOST:PORT``."""
    page = body.encode()

    class OnePage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), OnePage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
