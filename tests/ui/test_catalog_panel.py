"""The install panel's catalog and the "cannot run here" flag, in a real browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon
from tests.models_manager.conftest import wait_install
from tests.models_manager.unrunnable import cuda_only_pipeline
from tests.ui.conftest import checked_page, open_ui, screenshot


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon on the real catalog, with a CUDA-only model installed from a folder."""
    root = tmp_path_factory.mktemp("ui-catalog")
    olive = cuda_only_pipeline(root / "olive")
    running = Daemon(root, models_dir=str(root / "models"), workers=1).start()
    running.wait_worker_ready()
    with running.client() as client:
        started = client.post("/api/v1/models/install", json={"source": str(olive), "id": "olive"})
        assert started.status_code == 202, started.text
        assert wait_install(client, started.json()["id"], {"completed", "failed"})["warning"]
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    with checked_page(browser, daemon.url) as page:
        yield page


def test_catalog_lists_licenses_sizes_and_the_build_for_this_machine(page: Page) -> None:
    open_ui(page, "models")
    page.click("#install-catalog summary")
    turbo = page.locator(".catalog-row[data-catalog=sd-turbo]")
    expect(turbo).to_be_visible()
    expect(turbo).to_have_attribute("data-chosen", "portable")  # the CPU workers get it
    expect(turbo.locator(".install-head")).to_contain_text("sai-nc-community")
    expect(turbo.locator(".install-head")).to_contain_text("portable · 5.2 GB")
    expect(turbo.locator(".catalog-builds")).to_contain_text("cuda 2.6 GB")
    expect(turbo.locator(".catalog-summary")).to_contain_text("CPU gets the portable build")
    taesd = page.locator(".catalog-row[data-catalog=taesd]")
    expect(taesd.locator(".catalog-summary")).to_contain_text("converted to ONNX here")
    screenshot(page, "models-catalog-desktop")


def test_a_model_this_machine_cannot_run_is_flagged(page: Page) -> None:
    open_ui(page, "models")
    card = page.locator(".model[data-model=olive]")
    expect(card.locator(".tag.not-here")).to_have_text("cannot run here")
    expect(card.locator(".model-runs-on")).to_have_text("CUDA, DirectML")
    expect(card.locator(".model-not-here")).to_contain_text("NhwcConv")
    tiny = page.locator(".model[data-model=sd-tiny]")
    expect(tiny.locator(".tag.not-here")).to_have_count(0)
