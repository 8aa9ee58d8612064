"""Every sampler and schedule label a PNG gets is read back to the same id.

The PNG is written exactly as the worker writes it (the built-in png_metadata plugin on a plan);
it is read back by the Python PNG-info reader, by ``POST /sdapi/v1/png-info`` and by the web UI's
``matchSampler`` (run by Node against ``GET /api/v1/samplers`` and ``/schedules``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest
from litestar.testing import TestClient
from PIL import Image

from impasto.api.app import create_app
from impasto.api.compat.samplers_map import to_impasto
from impasto.engine.schedulers import SAMPLER_SPECS, find_sampler, find_schedule
from impasto.formats.png import parse_a1111_parameters, read_png_metadata, write_png
from impasto.plugins.png_metadata import postprocess_result
from impasto.plugins.types import PluginContext, PostprocessResult
from tests.api.conftest import make_services
from tests.harness import REPO

CASES = [(spec.id, schedule) for spec in SAMPLER_SPECS.values() for schedule in spec.schedules]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    services = make_services(tmp_path_factory.mktemp("labels"), allowed_hosts=["testserver"])
    with TestClient(app=create_app(services), base_url="http://testserver") as client:
        yield client
    services.extra["db"].close()


def written_png(tmp_path: Path, sampler: str, schedule: str) -> Path:
    plan = {
        "prompt": "a label test",
        "negative_prompt": "",
        "model": "sd-tiny",
        "width": 64,
        "height": 64,
        "steps": 7,
        "cfg_scale": 5.0,
        "sampler": sampler,
        "schedule": schedule,
    }
    result = PostprocessResult(job_id="j", index=0, seed=3, model="sd-tiny", request=plan)
    image = Image.new("RGB", (64, 64))
    postprocess_result(result, image, PluginContext(name="png_metadata", config={}))
    return write_png(image, tmp_path / "out.png", text=result.text)


@pytest.mark.parametrize(("sampler", "schedule"), CASES)
def test_png_labels_read_back_to_the_same_ids(
    api: TestClient, tmp_path: Path, sampler: str, schedule: str
) -> None:
    path = written_png(tmp_path, sampler, schedule)
    metadata = read_png_metadata(path)
    parsed = parse_a1111_parameters(metadata["parameters"])
    assert find_sampler(parsed["sampler_name"]) == sampler
    assert find_schedule(parsed["schedule_type"]) == schedule
    choice = to_impasto(parsed["sampler_name"], parsed["schedule_type"])
    assert (choice.sampler, choice.schedule) == (sampler, schedule)
    assert (metadata["impasto"]["sampler"], metadata["impasto"]["schedule"]) == (sampler, schedule)

    image = base64.b64encode(path.read_bytes()).decode()
    response = api.post("/sdapi/v1/png-info", json={"image": image})
    assert response.status_code == 200, response.text
    parameters = response.json()["parameters"]
    choice = to_impasto(parameters["Sampler"], parameters.get("Schedule type"))
    assert (choice.sampler, choice.schedule) == (sampler, schedule)


def test_the_pndm_label_is_a1111s(tmp_path: Path) -> None:
    parsed = parse_a1111_parameters(
        read_png_metadata(written_png(tmp_path, "pndm", "default"))["parameters"]
    )
    assert parsed["sampler_name"] == "PLMS"


def test_the_web_uis_reader_maps_every_label_back(api: TestClient, tmp_path: Path) -> None:
    labels: list[list[str | None]] = []
    for sampler, schedule in CASES:
        parsed = parse_a1111_parameters(
            read_png_metadata(written_png(tmp_path, sampler, schedule))["parameters"]
        )
        labels.append([parsed["sampler_name"], parsed["schedule_type"]])
    matched = [(m["sampler"], m["schedule"]) for m in run_match_sampler(api, labels)]
    assert matched == CASES


def run_match_sampler(api: TestClient, labels: list[list[str | None]]) -> list[dict[str, str]]:
    """ui_static/js/png-info.js's matchSampler on each (sampler, schedule label), under Node."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is required under CI (Debian package nodejs)")
        pytest.skip("needs node (Debian package nodejs)")
    script = (
        f"import {{ matchSampler }} from '{REPO / 'ui_static/js/png-info.js'}';\n"
        f"const samplers = {json.dumps(api.get('/api/v1/samplers').json())};\n"
        f"const schedules = {json.dumps(api.get('/api/v1/schedules').json())};\n"
        f"const labels = {json.dumps(labels)};\n"
        "console.log(JSON.stringify(labels.map(([name, sched]) =>\n"
        "  matchSampler(name, sched, samplers, schedules))));\n"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a1111s_automatic_reads_as_what_a1111_ran(api: TestClient) -> None:
    """An A1111 PNG that says "Automatic", or no schedule, ran the sampler's own choice."""
    labels: list[list[str | None]] = [
        ["Euler", "Automatic"],
        ["DPM++ 2M", None],
        ["DPM++ 2M SDE", "Automatic"],
        ["DDIM", "Automatic"],
        ["LMS Karras", "Automatic"],
        ["DPM++ 2M", "Default"],
    ]
    matched = [(m["sampler"], m["schedule"]) for m in run_match_sampler(api, labels)]
    python = [astuple(to_impasto(name, schedule)) for name, schedule in labels]
    assert (
        matched
        == python
        == [
            ("euler", "uniform"),
            ("dpmpp_2m", "karras"),
            ("dpmpp_2m_sde", "exponential"),
            ("ddim", "default"),
            ("lms", "karras"),
            ("dpmpp_2m", "default"),
        ]
    )


def test_schedules_are_listed_with_their_labels(api: TestClient) -> None:
    listed = {s["id"]: s for s in api.get("/api/v1/schedules").json()}
    assert listed["sgm_uniform"]["name"] == "SGM Uniform"
    assert listed["ddim_uniform"]["a1111_name"] == "ddim"
    every = {schedule for spec in SAMPLER_SPECS.values() for schedule in spec.schedules}
    assert every <= set(listed)


def test_hires_fix_is_written_as_a1111_writes_it(tmp_path: Path) -> None:
    plan = {
        "prompt": "a castle",
        "negative_prompt": "",
        "model": "sd-tiny",
        "width": 64,
        "height": 64,
        "steps": 7,
        "cfg_scale": 5.0,
        "sampler": "euler",
        "schedule": "default",
        "hires": {
            "width": 128,
            "height": 128,
            "upscaler": "latent-bicubic",
            "steps": 4,
            "strength": 0.5,
            "sampler": "dpmpp_2m",
            "prompt": None,
            "negative_prompt": None,
            "cfg_scale": None,
        },
    }
    result = PostprocessResult(job_id="j", index=0, seed=3, model="sd-tiny", request=plan)
    image = Image.new("RGB", (128, 128))
    postprocess_result(result, image, PluginContext(name="png_metadata", config={}))
    path = write_png(image, tmp_path / "out.png", text=result.text)
    parsed = parse_a1111_parameters(read_png_metadata(path)["parameters"])
    assert (parsed["width"], parsed["height"]) == (64, 64)  # A1111's Size is the first pass's
    extra = parsed["extra"]
    assert extra["Hires upscale"] == "2" and extra["Hires upscaler"] == "Latent (bicubic)"
    assert extra["Hires steps"] == "4" and extra["Hires sampler"] == "DPM++ 2M"
    assert parsed.get("strength", extra.get("Denoising strength")) in (0.5, "0.5")


@pytest.mark.parametrize("clip_skip", [1, 2])
def test_clip_skip_is_written_as_a1111_writes_it(tmp_path: Path, clip_skip: int) -> None:
    plan = {
        "prompt": "a castle",
        "model": "sd-tiny",
        "width": 64,
        "height": 64,
        "steps": 7,
        "cfg_scale": 5.0,
        "sampler": "euler",
        "clip_skip": clip_skip,
    }
    result = PostprocessResult(job_id="j", index=0, seed=3, model="sd-tiny", request=plan)
    image = Image.new("RGB", (64, 64))
    postprocess_result(result, image, PluginContext(name="png_metadata", config={}))
    path = write_png(image, tmp_path / "out.png", text=result.text)
    extra = parse_a1111_parameters(read_png_metadata(path)["parameters"])["extra"]
    # A1111 writes "Clip skip: N" only above 1.
    assert extra.get("Clip skip") == (None if clip_skip == 1 else str(clip_skip))
