"""axe-core's WCAG 2.1 AA rules on every panel, light and dark, desktop and phone; focus rings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon
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
def impasto_daemon(lived_in_daemon: Daemon) -> Daemon:
    """A finished image and a failed install, so every kind of row is on show."""
    return lived_in_daemon


def axe_violations(page: Page) -> list[dict[str, Any]]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(RUN_AXE, WCAG_21_AA)


def show(page: Page, panel: str) -> None:
    page.click(f"#tab-{panel}")
    expect(page.locator(f"#panel-{panel}")).to_be_visible()
    if panel == "gallery":
        page.wait_for_function(
            "[...document.querySelectorAll('.thumb img')].some(i => i.naturalWidth)"
        )
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


CONTRAST = """(pair) => {
  const rgb = (css) => {
    const probe = document.createElement('i');
    probe.style.color = css;
    document.body.append(probe);
    const [r, g, b, alpha = 1] = getComputedStyle(probe).color.match(/[\\d.]+/g).map(Number);
    probe.remove();
    return [r, g, b, alpha];
  };
  const lum = (c) => {
    const [r, g, b] = c.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  // A see-through ring shows the surface through it: blend before comparing.
  const [ring, surface] = pair.map(rgb);
  const seen = ring.slice(0, 3).map((v, i) => ring[3] * v + (1 - ring[3]) * surface[i]);
  const [a, b] = [lum(seen), lum(surface.slice(0, 3))];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""
RING = """() => {
  const shadow = getComputedStyle(document.activeElement).boxShadow;
  const outline = getComputedStyle(document.activeElement).outlineColor;
  const colours = (shadow.match(/rgba?\\([^)]*\\)/g) || []).filter((c) => !c.endsWith(', 0)'));
  const colour = colours[0] || outline;
  const root = getComputedStyle(document.documentElement);
  const surfaces = ['--bg', '--surface', '--surface-2'];
  return [colour, ...surfaces.map((v) => root.getPropertyValue(v).trim())];
}"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_focus_ring_stands_out_3_to_1_on_every_surface(
    browser: Browser, impasto_daemon: Daemon, scheme: str
) -> None:
    page = new_page(browser, impasto_daemon.url, DESKTOP, scheme)
    try:
        open_ui(page)
        for selector in ("#tab-generate", "#prompt", "#submit", "#seed-random"):
            page.focus(selector)
            page.keyboard.press("Shift+Tab")
            page.keyboard.press("Tab")  # keyboard focus, so :focus-visible applies
            page.wait_for_timeout(250)  # inputs fade their ring in
            ring, *surfaces = page.evaluate(RING)
            assert "0, 0, 0, 0" not in ring, (selector, ring)
            for surface in surfaces:
                ratio = page.evaluate(CONTRAST, [ring, surface])
                assert ratio >= 3, f"{selector}: ring {ring} on {surface} is {ratio:.2f}:1"
    finally:
        page.context.close()


def test_every_panel_has_one_h1_and_tab_skips_the_hidden_file_input(page: Page) -> None:
    open_ui(page)
    for panel in PANELS:
        assert page.locator(f"#panel-{panel} h1").count() == 1, panel
    page.click("#img-card summary")
    page.focus("#prompt")
    visited = []
    for _ in range(60):
        page.keyboard.press("Tab")
        visited.append(page.evaluate("document.activeElement.id"))
    assert "init-drop" in visited  # the drop zone is the keyboard's way to pick a file
    assert "init-file" not in visited
