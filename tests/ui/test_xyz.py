"""The X/Y/Z plot card on a real daemon: choose axes, run, see the grid; errors on the card."""

from __future__ import annotations

import base64
import io
import re
from typing import Any

from PIL import Image
from playwright.sync_api import Page, expect

from impasto.formats.png import parse_a1111_parameters
from tests.ui.conftest import QUICK, fill_form, open_ui
from tests.ui.test_accessibility import axe_violations


def test_plot_of_steps_by_prompt_sr_shows_the_grid(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="a red circle", seed="12", **QUICK)
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "Steps")
    page.fill("#xyz-x-values", "1-3")
    page.select_option("#xyz-y-type", "Prompt S/R")
    page.fill("#xyz-y-values", "red, blue")
    page.uncheck("#xyz-legend")
    page.click("#xyz-run")

    expect(page.locator("#xyz-status")).to_have_text("Done.", timeout=120_000)
    # Without a legend the grid is exactly 3 x 2 cells of 64 px.
    size = page.evaluate(
        "(() => { const i = document.querySelector('#xyz-result');"
        " return [i.naturalWidth, i.naturalHeight]; })()"
    )
    assert size == [3 * 64, 2 * 64]
    src = page.get_attribute("#xyz-result", "src") or ""
    grid = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    params = parse_a1111_parameters(grid.info["parameters"])
    assert params["extra"]["X Type"] == "Steps"
    assert params["extra"]["Y Type"] == "Prompt S/R"
    assert params["seed"] == 12
    expect(page.locator("#xyz-download")).to_have_attribute("download", "xyz-plot.png")
    # The open card with its result passes axe's WCAG 2.1 AA rules like the rest of the page.
    assert axe_violations(page) == []
    # The cells ran as ordinary jobs: the history holds the replaced prompts.
    with impasto_daemon.client() as client:
        items = client.get("/api/v1/history/", params={"limit": 6}).json()["items"]
    assert (
        sorted(job["request"]["prompt"] for job in items)
        == ["a blue circle"] * 3 + ["a red circle"] * 3
    )


def test_fill_writes_the_samplers_and_bad_values_show_an_error(page: Page) -> None:
    open_ui(page)
    fill_form(page, prompt="a green square", **QUICK)
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "Sampler")
    page.click("#xyz-x-fill")
    filled = page.input_value("#xyz-x-values")
    assert "Euler a" in filled and filled.count(",") >= 2
    page.select_option("#xyz-x-type", "Steps")
    page.fill("#xyz-x-values", "4, 900")
    page.click("#xyz-run")
    error = page.locator("#xyz-error")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text("script_args")
    expect(error).to_contain_text("steps")
    expect(page.locator("#xyz-figure")).to_be_hidden()


def test_stop_interrupts_a_running_plot(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    # A cell of 150 steps at 512 px takes over ten seconds here. At 64 px, three cells once
    # finished between the count showing and the Stop reaching the daemon.
    fill_form(
        page, prompt="a slow plot", **{**QUICK, "steps": "150", "width": "512", "height": "512"}
    )
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "Seed")
    page.fill("#xyz-x-values", "1-5")
    page.click("#xyz-run")
    # The card counts the plot's jobs still running or queued while it waits.
    expect(page.locator("#xyz-status")).to_contain_text("jobs left", timeout=30_000)
    page.click("#xyz-stop")
    # Stopped in the first cell there is no image at all; later, the rest are black cells.
    expect(page.locator("#xyz-status")).to_have_text(re.compile(r"^Stopped"), timeout=60_000)
    expect(page.locator("#xyz-stop")).to_be_hidden()
    with impasto_daemon.client() as client:
        items = client.get("/api/v1/history/", params={"limit": 5}).json()["items"]
    # The running cell and the ones queued behind it are cancelled; none ran to the end.
    assert [job["status"] for job in items] == ["cancelled"] * 5
