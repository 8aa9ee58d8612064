"""The X/Y/Z plot card on a real daemon: choose axes, run, see the grid; errors on the card."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import Page, expect

from impasto.formats.png import parse_a1111_parameters
from tests.ui.conftest import QUICK, fill_form, open_ui
from tests.ui.test_accessibility import axe_violations


def _run_without_legend(page: Page) -> list[int]:
    """Run the plot with no legend; the grid's [width, height] once it is done."""
    page.uncheck("#xyz-legend")
    page.click("#xyz-run")
    expect(page.locator("#xyz-status")).to_have_text("Done.", timeout=120_000)
    return list(
        page.evaluate(
            "(() => { const i = document.querySelector('#xyz-result');"
            " return [i.naturalWidth, i.naturalHeight]; })()"
        )
    )


def test_plot_of_steps_by_prompt_sr_shows_the_grid(page: Page, impasto_daemon: Any) -> None:
    open_ui(page)
    fill_form(page, prompt="a red circle", seed="12", **QUICK)
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "Steps")
    page.fill("#xyz-x-values", "1-3")
    page.select_option("#xyz-y-type", "Prompt S/R")
    page.fill("#xyz-y-values", "red, blue")
    size = _run_without_legend(page)
    # Without a legend the grid is exactly 3 x 2 cells of 64 px.
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


def test_the_plot_sends_the_forms_other_settings(page: Page, impasto_daemon: Any) -> None:
    """Hires fix, clip skip, the Advanced card's fields and tiling go with every cell, as the
    card says; what A1111's API has no field for (DeepCache) is named on the card."""
    open_ui(page)
    page.select_option("#model", "sd-tiny-turbo")  # one whose text encoder can skip a layer
    expect(page.locator("#model-defaults-note")).to_contain_text("sd-tiny-turbo")
    fill_form(page, prompt="a plotted castle", seed="3", **{**QUICK, "steps": "3"})
    page.select_option("#sampler", "euler")
    page.click("#hires-card summary")
    page.check("#hires")
    page.fill("#hires_scale", "2")
    page.fill("#hires_steps", "1")
    page.click("#advanced-card > summary")
    fill_form(page, clip_skip="2", subseed="5", subseed_strength="0.3", s_churn="1")
    fill_form(page, noise_seed_delta="31337")
    page.select_option("#rng", "cpu")
    page.check("#tiling")
    page.click("#speed-card summary")
    page.select_option("#cache_interval", "3")
    page.click("#xyz-card > summary")
    unused = page.locator("#xyz-unused")
    expect(unused).to_contain_text("DeepCache")
    page.select_option("#cache_interval", "0")
    expect(unused).not_to_contain_text("DeepCache")
    page.select_option("#xyz-x-type", "Seed")
    page.fill("#xyz-x-values", "3, 4")
    size = _run_without_legend(page)
    # Each cell is the hires pass's size: twice 64 px.
    assert size == [2 * 128, 128]
    with impasto_daemon.client() as client:
        items = client.get("/api/v1/history/", params={"limit": 2}).json()["items"]
    assert sorted(job["request"]["seed"] for job in items) == [3, 4]
    for job in items:
        request = job["request"]
        assert request["hires"] and request["hires"]["scale"] == 2
        assert request["model"] == "sd-tiny-turbo"
        assert request["clip_skip"] == 2 and request["tiling"] is True
        assert (request["subseed_strength"], request["s_churn"]) == (0.3, 1.0)
        assert (request["noise_seed_delta"], request["rng"]) == (31337, "cpu")


def test_with_an_init_image_the_plot_runs_img2img(
    page: Page, impasto_daemon: Any, tmp_path: Path
) -> None:
    source = tmp_path / "init.png"
    Image.new("RGB", (64, 64), (200, 40, 40)).save(source)
    open_ui(page)
    fill_form(page, prompt="a plotted img2img", **QUICK)
    page.click("#img-card > summary")
    page.set_input_files("#init-file", str(source))
    expect(page.locator("#img-summary")).to_have_text("· img2img")
    page.fill("#strength", "0.5")
    page.click("#xyz-card > summary")
    page.select_option("#xyz-x-type", "Seed")
    page.fill("#xyz-x-values", "1, 2")
    with page.expect_request("**/sdapi/v1/img2img") as sent:
        page.click("#xyz-run")
    body = json.loads(sent.value.post_data or "{}")
    assert body["init_images"][0].startswith("data:image/png;base64,")
    assert body["denoising_strength"] == 0.5 and "mask" not in body
    expect(page.locator("#xyz-status")).to_have_text("Done.", timeout=120_000)
    with impasto_daemon.client() as client:
        items = client.get("/api/v1/history/", params={"limit": 2}).json()["items"]
    assert all(job["request"]["init_image"] and job["request"]["strength"] == 0.5 for job in items)
