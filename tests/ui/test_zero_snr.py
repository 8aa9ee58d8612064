"""A zero-terminal-SNR model keeps its own schedule when a sampler is picked: Karras and
Exponential start at its huge top sigma, so the web UI does not recommend them there."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.harness import Daemon
from tests.ui.conftest import open_ui

TINY_V = Path(__file__).resolve().parents[2] / "models" / "tiny" / "sd-tiny-v"
ZSNR = "sd-tiny-zsnr"


@pytest.fixture(scope="module")
def impasto_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The tiny models plus a copy of sd-tiny-v whose scheduler is zero terminal SNR."""
    root = tmp_path_factory.mktemp("zero-snr")
    model = root / "models" / ZSNR
    shutil.copytree(TINY_V, model)
    (model / "impasto-test-model").unlink()  # listed, as a user's model is
    config_path = model / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config.update(rescale_betas_zero_snr=True, timestep_spacing="trailing")
    config_path.write_text(json.dumps(config))
    daemon = Daemon(root, models_dir=str(root / "models")).start()
    daemon.wait_worker_ready()
    yield daemon
    daemon.stop()


def test_the_api_says_which_models_are_zero_snr(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        assert client.get(f"/api/v1/models/{ZSNR}").json()["zero_snr"] is True
        assert client.get("/api/v1/models/impasto-shapes").json()["zero_snr"] is False


def test_picking_a_karras_sampler_keeps_a_zero_snr_models_schedule(page: Page) -> None:
    open_ui(page)
    schedule = page.locator("#schedule")
    page.select_option("#model", ZSNR)
    page.select_option("#sampler", "euler")
    page.select_option("#sampler", "dpmpp_2m")
    expect(schedule).to_have_value("default")
    # Another model: DPM++ 2M gets its recommended Karras again.
    page.select_option("#model", "impasto-shapes")
    page.select_option("#sampler", "euler")
    page.select_option("#sampler", "dpmpp_2m")
    expect(schedule).to_have_value("karras")
