"""axe-core's WCAG 2.1 AA rules on every panel, light and dark, desktop and phone; focus rings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import TINY, Daemon, free_port, wait_status
from tests.ui.conftest import DESKTOP, PHONE, new_page, open_ui

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
PANELS = ["generate", "queue", "gallery", "models", "system"]
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
  return result.violations.map((v) => ({
    rule: v.id,
    help: v.help,
    nodes: v.nodes.slice(0, 5).map((n) => `${n.target.join(' ')}: ${n.failureSummary}`),
  }));
}"""


@pytest.fixture(scope="module")
def impasto_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon with a finished image and a failed install, so every kind of row is on show."""
    unreachable = f"http://127.0.0.1:{free_port()}"
    daemon = Daemon(tmp_path_factory.mktemp("a11y"), hf_endpoint=unreachable).start()
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


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE, WCAG_21_AA)


def show(page: Page, panel: str) -> None:
    page.click(f"#tab-{panel}")
    expect(page.locator(f"#panel-{panel}")).to_be_visible()
    if panel == "gallery":
        page.wait_for_function("[...document.querySelectorAll('.thumb img')].some(i => i.naturalWidth)")
    if panel == "models":
        expect(page.locator(".model").first).to_be_visible()
        expect(page.locator(".install").first).to_be_visible()
    if panel == "system":
        expect(page.locator("#sys-provider")).not_to_be_empty()
    page.wait_for_timeout(300)  # transitions settle before colours are measured


@pytest.mark.parametrize(
    ("size", "scheme"),
    [("desktop", "light"), ("desktop", "dark"), ("phone", "light"), ("phone", "dark")],
)
def test_no_wcag_21_aa_violations_on_any_panel(
    browser: Browser, impasto_daemon: Daemon, size: str, scheme: str
) -> None:
    page = new_page(browser, impasto_daemon.url, DESKTOP if size == "desktop" else PHONE, scheme)
    try:
        open_ui(page)
        found = {}
        for panel in PANELS:
            show(page, panel)
            found[panel] = axe_violations(page)
        page.click("#tab-gallery")
        page.locator(".thumb").first.click()
        expect(page.locator("#viewer")).to_be_visible()
        page.wait_for_timeout(300)
        found["viewer"] = axe_violations(page)
        report = [
            f"{where}: {v['rule']} ({v['help']})\n    " + "\n    ".join(v["nodes"])
            for where, violations in found.items()
            for v in violations
        ]
        assert report == [], "\n".join(report)
    finally:
        page.context.close()
