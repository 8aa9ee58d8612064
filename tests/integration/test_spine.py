"""Every entry point resolves a bare request (prompt + model) to the model family's defaults.

One real daemon; per bundled family a request with only a prompt and the model goes through the
native API, the CLI, A1111 txt2img, OpenAI images/generations and the web UI in Chromium. The
job record's plan and the PNG's metadata must both show the family table's defaults.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from impasto.engine.families import family_defaults
from impasto.engine.schedulers import sampler_label
from impasto.formats.png import parse_a1111_parameters, read_png_metadata
from impasto.services.detect import detect_folder
from impasto.services.model_entry import DEMO_SIZE
from tests.harness import REPO, Daemon, wait_status

TINY_MODELS = REPO / "models" / "tiny"
# Families that generate from a prompt alone (inpaint needs an image and a mask, a refiner a base).
NOT_PROMPT_ONLY = {"inpaint", "sdxl-refiner"}


def _one_model_per_family() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in sorted(TINY_MODELS.iterdir()):
        # The random test models carry only their family's defaults (impasto-shapes has a card).
        if (folder / "model_index.json").is_file() and not (folder / "impasto.json").is_file():
            family = detect_folder(folder).family
            if family not in NOT_PROMPT_ONLY:
                found.setdefault(family, folder.name)
    return found


MODELS = _one_model_per_family()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon(tmp_path_factory.mktemp("spine")).start()
    d.wait_worker_ready()
    yield d
    d.stop()


def _job_by_prompt(client: httpx.Client, prompt: str) -> dict[str, Any]:
    items = client.get("/api/v1/history", params={"q": prompt, "limit": 5}).json()["items"]
    assert len(items) == 1, items
    return wait_status(client, items[0]["id"], {"completed", "failed"})


def _native(daemon: Daemon, prompt: str, model: str, tmp: Path) -> tuple[dict[str, Any], bytes]:
    with daemon.client() as client:
        response = client.post("/api/v1/generate", json={"prompt": prompt, "model": model})
        assert response.status_code == 202, response.text
        job = wait_status(client, response.json()["id"], {"completed", "failed"})
        return job, client.get(job["results"][0]["url"]).content


def _cli(daemon: Daemon, prompt: str, model: str, tmp: Path) -> tuple[dict[str, Any], bytes]:
    env = {**os.environ, "IMPASTO_RUNTIME_DIR": str(daemon.runtime_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "impasto", "generate", prompt, "--model", model, "-o", str(tmp)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    png = Path(done.stdout.split()[0])
    with daemon.client() as client:
        job = client.get(f"/api/v1/generate/{png.name.rsplit('-', 1)[0]}").json()
    return job, png.read_bytes()


def _a1111(daemon: Daemon, prompt: str, model: str, tmp: Path) -> tuple[dict[str, Any], bytes]:
    body = {"prompt": prompt, "override_settings": {"sd_model_checkpoint": model}}
    with daemon.client() as client:
        response = client.post("/sdapi/v1/txt2img", json=body)
        assert response.status_code == 200, response.text
        info = json.loads(response.json()["info"])
        job = _job_by_prompt(client, prompt)
    plan = job["plan"]
    assert (info["steps"], info["cfg_scale"], info["width"]) == (
        plan["steps"],
        plan["cfg_scale"],
        plan["width"],
    )
    assert info["sampler_name"] == sampler_label(plan["sampler"])
    return job, base64.b64decode(response.json()["images"][0])


def _openai(daemon: Daemon, prompt: str, model: str, tmp: Path) -> tuple[dict[str, Any], bytes]:
    body = {"prompt": prompt, "model": model, "response_format": "b64_json"}
    with daemon.client() as client:
        response = client.post("/v1/images/generations", json=body)
        assert response.status_code == 200, response.text
        job = _job_by_prompt(client, prompt)
    png = base64.b64decode(response.json()["data"][0]["b64_json"])
    with Image.open(io.BytesIO(png)) as image:
        assert image.size == (job["plan"]["width"], job["plan"]["height"])
    # ``size`` only where OpenAI's document allows the value (three sizes, none of these).
    assert "size" not in response.json()
    return job, png


ENTRY_POINTS: dict[str, Callable[[Daemon, str, str, Path], tuple[dict[str, Any], bytes]]] = {
    "native": _native,
    "cli": _cli,
    "a1111": _a1111,
    "openai": _openai,
}


def assert_family_defaults(family: str, job: dict[str, Any], png: bytes) -> None:
    """The job record's plan and the PNG's two metadata chunks show the family's defaults."""
    expected = family_defaults(family)
    assert job["status"] == "completed", job
    plan = job["plan"]
    assert plan["family"] == family
    assert (plan["steps"], plan["cfg_scale"], plan["sampler"], plan["schedule"]) == (
        expected.steps,
        expected.cfg_scale,
        expected.sampler,
        expected.schedule,
    )
    # The bundled demo models run at DEMO_SIZE; the rest at the family's size.
    assert (plan["width"], plan["height"]) == (DEMO_SIZE, DEMO_SIZE)
    assert job["total_steps"] == expected.steps
    assert Image.open(io.BytesIO(png)).size == (DEMO_SIZE, DEMO_SIZE)
    metadata = read_png_metadata(png)
    parsed = parse_a1111_parameters(metadata["parameters"])
    assert (parsed["steps"], parsed["cfg_scale"], parsed["width"]) == (
        expected.steps,
        expected.cfg_scale,
        DEMO_SIZE,
    )
    assert parsed["sampler_name"] == sampler_label(expected.sampler)
    chunk = metadata["impasto"]
    assert (chunk["steps"], chunk["cfg_scale"], chunk["sampler"]) == (
        expected.steps,
        expected.cfg_scale,
        expected.sampler,
    )


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("family", sorted(MODELS))
def test_a_bare_request_runs_with_the_family_defaults(
    daemon: Daemon, tmp_path: Path, family: str, entry: str
) -> None:
    prompt = f"spine {entry} {family} {uuid.uuid4().hex[:8]}"
    job, png = ENTRY_POINTS[entry](daemon, prompt, MODELS[family], tmp_path)
    assert_family_defaults(family, job, png)


def test_every_prompt_only_family_is_covered() -> None:
    assert {"sd1", "sd-turbo", "lcm", "sdxl", "sdxl-turbo"} <= set(MODELS)


@pytest.mark.parametrize("family", sorted(MODELS))
def test_the_web_ui_applies_the_model_defaults(daemon: Daemon, family: str) -> None:
    from playwright import sync_api as playwright  # a dev dependency: make test installs it

    from tests.tools import require_browser
    from tests.ui.conftest import CHROMIUM_ARGS, new_page

    model = MODELS[family]
    prompt = f"spine ui {family} {uuid.uuid4().hex[:8]}"
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_browser(), args=CHROMIUM_ARGS)
        try:
            page = new_page(browser, daemon.url)
            page.goto("/#generate")
            page.wait_for_function("document.querySelectorAll('#model option').length > 1")
            page.select_option("#model", model)
            note = page.locator("#model-defaults-note")
            playwright.expect(note).to_contain_text(f"Applied {model}'s defaults")
            expected = family_defaults(family)
            # The form shows the values that will run.
            playwright.expect(page.locator("#steps")).to_have_value(str(expected.steps))
            playwright.expect(page.locator("#sampler")).to_have_value(expected.sampler)
            page.fill("#prompt", prompt)
            page.click("#submit")
            live = page.locator("#live")
            playwright.expect(live).to_have_attribute("data-state", "completed", timeout=120_000)
            job_id = live.get_attribute("data-job")
            assert not page.errors  # type: ignore[attr-defined]
        finally:
            browser.close()
    with daemon.client() as client:
        job = client.get(f"/api/v1/generate/{job_id}").json()
        png = client.get(job["results"][0]["url"]).content
    assert_family_defaults(family, job, png)
