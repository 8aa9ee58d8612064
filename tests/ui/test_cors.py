"""A web app served from another origin uses the API once its origin is in allowed_origins
(docs/configuration.md): Chromium's own CORS checks, preflights included, decide."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.harness import Daemon
from tests.ui.conftest import serve_html

TOKEN = "cors-token"

# Runs in the other origin's page: a GET with the token (a preflight, for its header) and a
# JSON POST; answers what the page could read, or the error fetch threw.
CALLS = """async ([base, token]) => {
  const out = {};
  const auth = {Authorization: `Bearer ${token}`};
  try {
    const queue = await fetch(`${base}/api/v1/queue`, {headers: auth});
    out.queue = [queue.status, Object.keys(await queue.json()).sort()];
    const plan = await fetch(`${base}/api/v1/generate/plan`, {
      method: 'POST',
      headers: {...auth, 'Content-Type': 'application/json'},
      body: JSON.stringify({prompt: 'a red circle', width: 64, height: 64, steps: 2}),
    });
    out.plan = [plan.status, (await plan.json()).width];
    const refused = await fetch(`${base}/api/v1/generate/plan`, {
      method: 'POST',
      headers: {...auth, 'Content-Type': 'application/json'},
      body: JSON.stringify({prompt: 'x', width: 7}),
    });
    out.refused = [refused.status, (await refused.json()).errors[0].field];
  } catch (error) {
    out.error = String(error);
  }
  return out;
}"""


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two other web apps on this machine, at http://localhost:PORT."""
    page = "<!doctype html><title>another app</title>"
    with serve_html(page, "localhost") as listed, serve_html(page, "localhost") as unlisted:
        yield listed, unlisted


@pytest.fixture(scope="module")
def cors_daemon(
    tmp_path_factory: pytest.TempPathFactory, origins: tuple[str, str]
) -> Iterator[Daemon]:
    listed = [origins[0]]
    daemon = Daemon(tmp_path_factory.mktemp("cors"), token=TOKEN, allowed_origins=listed)
    daemon.start()
    yield daemon
    daemon.stop()


def _page_at(browser: Browser, origin: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(f"{origin}/")
    return page


def test_a_listed_origin_reads_answers_and_an_unlisted_one_cannot(
    browser: Browser, cors_daemon: Daemon, origins: tuple[str, str]
) -> None:
    listed, unlisted = (_page_at(browser, origin) for origin in origins)
    try:
        answers: dict[str, Any] = listed.evaluate(CALLS, [cors_daemon.url, TOKEN])
        assert "error" not in answers, answers
        assert answers["queue"] == [200, ["items", "next_offset", "paused", "total"]], answers
        assert answers["plan"] == [200, 64]
        assert answers["refused"] == [422, "width"]  # errors are readable too
        blocked: dict[str, Any] = unlisted.evaluate(CALLS, [cors_daemon.url, TOKEN])
        assert "Failed to fetch" in blocked.get("error", ""), blocked
    finally:
        listed.context.close()
        unlisted.context.close()
