"""The viewer's Upscale action: an installed ONNX model by a factor, and SD upscale as a job."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon, running_daemon
from tests.sr_model import max_diff, reference_sr, write_sr_model
from tests.ui.conftest import checked_page, open_ui
from tests.ui.test_gallery import make_jobs


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("ui-upscale")
    write_sr_model(root / "data" / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    with running_daemon(root, preview_every=0) as running:
        yield running


@pytest.fixture
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    with checked_page(browser, daemon.url) as page:
        yield page


def open_viewer(page: Page, job: dict[str, Any]) -> None:
    open_ui(page, "gallery")
    page.locator(f".thumb[data-job='{job['id']}']").click()
    expect(page.locator("#viewer")).to_be_visible()
    page.locator("#upscale-box > summary").click()
    expect(page.locator("#upscale-upscaler option[value='tiny-sr']")).to_have_count(1)


def test_upscale_with_the_installed_model(page: Page, daemon: Daemon) -> None:
    [job] = make_jobs(daemon, ["a lighthouse to upscale"])
    open_viewer(page, job)
    page.select_option("#upscale-upscaler", "tiny-sr")
    page.fill("#upscale-scale", "2")
    page.click("#upscale-run")
    expect(page.locator("#upscale-status")).to_have_text("Upscaled to 128 × 128 with tiny-sr.")
    page.wait_for_function("document.querySelector('#viewer-img').naturalWidth === 128")
    link = page.locator("#upscale-download")
    expect(link).to_be_visible()
    with page.expect_download() as download:
        link.click()
    upscaled = Image.open(download.value.path())
    with daemon.client() as client:
        original = Image.open(io.BytesIO(client.get(job["results"][0]["url"]).content))
    model = daemon.data_dir / "models" / "upscalers" / "tiny-sr.onnx"
    assert max_diff(upscaled, reference_sr(original, model)) <= 1
    assert upscaled.info["parameters"] == original.info["parameters"]


def test_sd_upscale_queues_a_job(page: Page, daemon: Daemon) -> None:
    [job] = make_jobs(daemon, ["a harbour to sd upscale"], seed=21)
    open_viewer(page, job)
    page.check("#upscale-sd")
    expect(page.locator("#upscale-sd-fields")).to_be_visible()
    page.fill("#upscale-strength", "0.4")
    page.fill("#upscale-overlap", "16")
    page.click("#upscale-run")
    expect(page.locator("#upscale-status")).to_contain_text("SD upscale queued")
    with daemon.client() as client:
        deadline = time.monotonic() + 60
        while True:
            items = client.get("/api/v1/history", params={"limit": 5}).json()["items"]
            done = [i for i in items if (i.get("plan") or {}).get("sd_upscale")]
            if done and done[0]["status"] == "completed":
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.2)
    plan = done[0]["plan"]
    assert plan["sd_upscale"]["overlap"] == 16 and plan["sd_upscale"]["upscaler"] == "lanczos"
    assert (plan["width"], plan["height"], plan["strength"]) == (64, 64, 0.4)
    assert plan["prompt"] == "a harbour to sd upscale" and plan["seed"] == 21
    assert (done[0]["results"][0]["width"], done[0]["results"][0]["height"]) == (128, 128)


def test_hires_menu_offers_the_installed_model(page: Page) -> None:
    open_ui(page, "generate")
    options = page.locator("#hires_upscaler option")
    expect(page.locator("#hires_upscaler option[value='tiny-sr']")).to_have_count(1)
    values = options.evaluate_all("els => els.map((e) => e.value)")
    assert values[-3:] == ["lanczos", "nearest", "tiny-sr"]
