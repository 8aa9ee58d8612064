"""The Models panel against the real model manager: install with progress, remove, load/unload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.harness import TINY, Daemon, wait_status
from tests.models_manager.conftest import tar_gz, wait_install
from tests.models_manager.fakehub import FakeHub
from tests.ui.conftest import (
    DESKTOP,
    PHONE,
    QUICK,
    SCREENSHOTS,
    checked_page,
    fill_form,
    finished_job,
    new_page,
    open_ui,
    screenshot,
)
from tests.ui.test_layout import UNLABELLED

MODELS = Path(__file__).resolve().parents[2] / "models" / "tiny"
BAR = ".install[data-model={}] [role=progressbar]"
RATE = 400_000  # bytes per second: the ~2 MB archive takes about 5 s, several progress ticks


@pytest.fixture(scope="module")
def files() -> Iterator[FakeHub]:
    """A throttled file server on 127.0.0.1 serving the tiny model as a .tar.gz archive."""
    server = FakeHub()
    archive = tar_gz(MODELS / "sd-tiny", "sd-tiny")
    server.files["tiny-copy.tar.gz"] = archive
    server.files["tiny-slow.tar.gz"] = archive
    server.rate = RATE
    yield server
    server.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon whose models dir is a fresh temp folder (IMPASTO_MODELS_DIR)."""
    root = tmp_path_factory.mktemp("ui-models")
    running = Daemon(root, models_dir=str(root / "models"), workers=1).start()
    running.wait_worker_ready()
    # A LoRA and an embedding, so the list has more than one group.
    adapters = MODELS / "adapters"
    with running.client() as client:
        for path in [
            adapters / "loras" / "tiny-kohya.safetensors",
            adapters / "embeddings" / "tiny-a1111.safetensors",
        ]:
            started = client.post("/api/v1/models/install", json={"source": str(path)})
            assert started.status_code == 202, started.text
            done = wait_install(client, started.json()["id"], {"completed", "failed"})
            assert done["status"] == "completed", done
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    """The UI on this module's daemon; fails the test on uncaught page errors."""
    with checked_page(browser, daemon.url) as page:
        yield page


def models_dir(daemon: Daemon) -> Path:
    return Path(daemon.env()["IMPASTO_MODELS_DIR"])


def install_row(page: Page, model_id: str) -> Any:
    return page.locator(f".install[data-model={model_id}]")


def progress_of(page: Page, model_id: str) -> int:
    return int(page.get_attribute(BAR.format(model_id), "aria-valuenow") or 0)


def test_a_model_install_shows_progress(page: Page, daemon: Daemon, files: FakeHub) -> None:
    open_ui(page, "models")
    expect(page.locator(".model").first).to_be_visible()
    assert page.locator("#model option[value=tiny-copy]").count() == 0
    page.fill("#install-source", f"{files.url}/files/tiny-copy.tar.gz")
    page.click("#install-submit")

    row = install_row(page, "tiny-copy")
    expect(row).to_have_attribute("data-stage", "download")
    expect(row.locator(".pill")).to_have_text("Downloading")
    # The bar moves: two readings during the download, the second further along.
    page.wait_for_function(
        "sel => +document.querySelector(sel).getAttribute('aria-valuenow') > 0",
        arg=BAR.format("tiny-copy"),
    )
    first = progress_of(page, "tiny-copy")
    expect(row.locator(".install-bytes")).to_contain_text(" of ")
    screenshot(page, "models-installing-desktop")
    page.wait_for_function(
        "([sel, v]) => +document.querySelector(sel).getAttribute('aria-valuenow') > v",
        arg=[BAR.format("tiny-copy"), first],
    )
    second = progress_of(page, "tiny-copy")
    assert 0 < first < second, (first, second)

    expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(row.locator(".pill")).to_have_text("Installed")
    assert progress_of(page, "tiny-copy") == 100
    expect(row.get_by_role("button", name="Cancel installing tiny-copy")).to_be_hidden()
    card = page.locator(".model-group[data-type=checkpoint] .model[data-model=tiny-copy]")
    expect(card).to_be_visible()
    expect(card.locator(".tags")).to_contain_text("sd1")
    expect(card.locator(".model-size")).not_to_have_text("–")
    expect(page.locator("#model option[value=tiny-copy]")).to_have_count(1)
    assert (models_dir(daemon) / "tiny-copy" / "unet" / "model.onnx").is_file()

    # The installs list comes back from GET /models/installs after a reload.
    page.reload()
    expect(install_row(page, "tiny-copy")).to_have_attribute("data-status", "completed")

    # Remove: a dismissed confirm keeps it; an accepted one deletes it everywhere.
    page.once("dialog", lambda dialog: dialog.dismiss())
    card.get_by_role("button", name="Remove tiny-copy").click()
    expect(card).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Remove tiny-copy").click()
    expect(card).to_have_count(0)
    expect(page.locator("#model option[value=tiny-copy]")).to_have_count(0)
    assert not (models_dir(daemon) / "tiny-copy").exists()


def test_an_int8_install_from_the_advanced_options(
    page: Page, daemon: Daemon, files: FakeHub
) -> None:
    open_ui(page, "models")
    page.fill("#install-source", f"{files.url}/files/tiny-copy.tar.gz")
    page.click("#install-advanced summary")
    page.fill("#install-id", "tiny-eight")
    page.select_option("#install-precision", "int8")
    page.click("#install-submit")
    row = install_row(page, "tiny-eight")
    expect(row).to_have_attribute("data-status", "completed", timeout=90_000)
    card = page.locator(".model-group[data-type=checkpoint] .model[data-model=tiny-eight]")
    expect(card.locator(".tags")).to_contain_text("int8")
    expect(page.locator("#install-precision")).to_have_value("")  # the form starts afresh
    with daemon.client() as client:
        assert client.get("/api/v1/models/tiny-eight").json()["precision"] == "int8"
        assert client.delete("/api/v1/models/tiny-eight").status_code in (200, 204)


def test_cancel_an_install_and_see_field_errors(page: Page, daemon: Daemon, files: FakeHub) -> None:
    open_ui(page, "models")
    page.fill("#install-source", "not a thing")
    page.click("#install-submit")
    expect(page.locator("#err-install-source")).to_be_visible()
    expect(page.locator("#install-source")).to_have_attribute("aria-invalid", "true")
    # An error on an advanced field opens the disclosure and sits under that field.
    page.fill("#install-source", "impasto/sd-tiny")
    page.evaluate("document.querySelector('#install-advanced').open = true")
    page.fill("#install-subfolder", "../../etc")
    page.evaluate("document.querySelector('#install-advanced').open = false")
    page.click("#install-submit")
    expect(page.locator("#err-install-subfolder")).to_be_visible()
    expect(page.locator("#install-advanced")).to_have_attribute("open", "")

    page.fill("#install-source", f"{files.url}/files/tiny-slow.tar.gz")
    page.fill("#install-subfolder", "")
    page.click("#install-submit")
    row = install_row(page, "tiny-slow")
    expect(row).to_have_attribute("data-stage", "download")
    row.get_by_role("button", name="Cancel installing tiny-slow").click()
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(row.locator(".pill")).to_have_text("Cancelled")
    assert page.locator(".model[data-model=tiny-slow]").count() == 0
    assert not (models_dir(daemon) / "tiny-slow").exists()


def test_remove_refused_while_a_job_uses_the_model(page: Page, daemon: Daemon) -> None:
    with daemon.client() as client:
        body = {"source": str(MODELS / "sd-tiny"), "id": "busy-one"}
        started = client.post("/api/v1/models/install", json=body).json()
        assert wait_install(client, started["id"], {"completed", "failed"})["status"] == "completed"
        client.post("/api/v1/queue/pause")
        queued = client.post(
            "/api/v1/generate", json={**TINY, "prompt": "a fox", "model": "busy-one"}
        )
        assert queued.status_code == 202, queued.text
        job = queued.json()
        try:
            open_ui(page, "models")
            card = page.locator(".model[data-model=busy-one]")
            page.once("dialog", lambda dialog: dialog.accept())
            card.get_by_role("button", name="Remove busy-one").click()
            # The daemon's 409 is shown on the card, naming the job in the way.
            expect(card.locator(".model-error")).to_contain_text(job["id"])
            expect(card).to_be_visible()
        finally:
            client.post(f"/api/v1/generate/{job['id']}/cancel")
            client.post("/api/v1/queue/resume")
        wait_status(client, job["id"], {"cancelled"})
    page.once("dialog", lambda dialog: dialog.accept())
    card.get_by_role("button", name="Remove busy-one").click()
    expect(card).to_have_count(0)
    # Bundled models are read-only: badge, and no Remove button.
    bundled = page.locator(".model[data-model=sd-tiny]")
    expect(bundled.locator(".tag.read-only")).to_be_visible()
    expect(bundled.get_by_role("button", name="Remove sd-tiny")).to_have_count(0)


def test_load_and_unload_show_in_loaded_now(page: Page, daemon: Daemon) -> None:
    open_ui(page, "models")
    row = page.locator("#models-loaded .loaded-row[data-model=sd-tiny-v]")
    card = page.locator(".model[data-model=sd-tiny-v]")
    expect(row).to_have_count(0)
    card.get_by_role("button", name="Load sd-tiny-v").click()
    expect(row).to_be_visible(timeout=30_000)
    expect(row.locator(".loaded-expiry")).to_contain_text("unloads in")
    expect(card.locator(".pill.ok")).to_have_text("Loaded")
    with daemon.client() as client:
        loaded = client.get("/api/v1/models/loaded").json()
    assert any(m["model"] == "sd-tiny-v" for m in loaded)
    screenshot(page, "models-loaded-desktop")
    card.get_by_role("button", name="Unload sd-tiny-v").click()
    expect(row).to_have_count(0, timeout=30_000)
    expect(card.get_by_role("button", name="Load sd-tiny-v")).to_be_enabled()


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_models_panel_fits_and_is_labelled(browser: Browser, daemon: Daemon, size: str) -> None:
    page = new_page(browser, daemon.url, DESKTOP if size == "desktop" else PHONE)
    try:
        open_ui(page, "models")
        expect(page.locator(".model").first).to_be_visible()
        with daemon.client() as client:
            listed = client.get("/api/v1/models").json()
        # One group per type, checkpoints first, each card in its own type's group.
        groups = page.eval_on_selector_all(
            ".model-group",
            "gs => gs.map(g => [g.dataset.type,"
            " [...g.querySelectorAll('.model')].map(m => m.dataset.model)])",
        )
        assert [t for t, _ in groups] == ["checkpoint", "lora", "embedding"]
        for kind, ids in groups:
            assert sorted(ids) == sorted(m["id"] for m in listed if m["type"] == kind)
        expect(page.locator(".model-group[data-type=lora] .group-title")).to_contain_text("LoRAs")
        page.click("#install-advanced summary")
        page.wait_for_timeout(200)
        scroll = page.evaluate(
            "[document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]"
        )
        assert scroll[0] <= scroll[1], f"the Models panel scrolls sideways: {scroll}"
        assert page.evaluate(UNLABELLED) == []
        assert screenshot(page, f"models-{size}").stat().st_size > 0
        page.screenshot(path=str(SCREENSHOTS / f"models-{size}-full.png"), full_page=True)
        assert not page.errors  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_a_lora_or_an_embedding_card_puts_it_into_the_form(page: Page, daemon: Daemon) -> None:
    """A1111's extra networks: a LoRA card adds a LoRA row at weight 1, an embedding card its
    name to the prompt, which the daemon then reads as the embedding."""
    open_ui(page, "models")
    page.get_by_role("button", name="Add to the LoRAs: tiny-kohya").click()
    expect(page.locator("#panel-generate")).to_be_visible()
    expect(page.locator("#lora-name-0")).to_have_value("tiny-kohya")
    expect(page.locator("#lora-weight-0")).to_have_value("1")
    page.fill("#prompt", "a lighthouse, ")
    page.click("#tab-models")
    page.get_by_role("button", name="Add to the prompt: tiny-a1111").click()
    expect(page.locator("#prompt")).to_have_value("a lighthouse, tiny-a1111")
    fill_form(page, **QUICK)
    page.click("#submit")
    job = finished_job(page, daemon)
    assert job["request"]["loras"] == [{"name": "tiny-kohya", "weight": 1.0, "unet_weight": None}]
    assert job["request"]["prompt"] == "a lighthouse, tiny-a1111"
