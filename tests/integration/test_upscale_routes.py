"""The native upscaler surfaces through a real daemon: listing, upscale, hires fix through an
installed ONNX model, SD upscale as a queued job (progress, metadata, cancel)."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webuiapi
from PIL import Image

from impasto.client import Client
from impasto.formats.png import parse_a1111_parameters
from tests.harness import TINY, Daemon, running_daemon, wait_status
from tests.sr_model import max_diff, pattern, reference_sr, write_sr_model


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("upscale-routes")
    write_sr_model(root / "data" / "models" / "upscalers" / "tiny-sr.onnx", scale=2)
    with running_daemon(root, preview_every=0) as running:
        yield running


@pytest.fixture
def model(daemon: Daemon) -> Path:
    return daemon.data_dir / "models" / "upscalers" / "tiny-sr.onnx"


def b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def run_job(daemon: Daemon, body: dict[str, Any]) -> tuple[dict[str, Any], Image.Image]:
    with daemon.client() as client:
        response = client.post("/api/v1/generate", json=body)
        assert response.status_code == 202, response.text
        done = wait_status(client, response.json()["id"], {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        image = Image.open(io.BytesIO(client.get(done["results"][0]["url"]).content))
        image.load()
    return done, image


def test_listing(daemon: Daemon) -> None:
    with daemon.client() as client:
        items = client.get("/api/v1/upscalers").json()
        limits = client.get("/api/v1/limits").json()
    assert [(i["id"], i["name"], i["kind"]) for i in items] == [
        ("none", "None", "none"),
        ("lanczos", "Lanczos", "resize"),
        ("nearest", "Nearest", "resize"),
        ("tiny-sr", "tiny-sr", "model"),
    ]
    assert items[3]["scale"] == 2.0
    # The hires menu offers the installed model after the built-in upscalers.
    assert limits["hires_upscaler"]["choices"][-3:] == ["lanczos", "nearest", "tiny-sr"]


def test_upscale_an_inline_image_with_the_model(daemon: Daemon, model: Path) -> None:
    source = pattern(24, 16)
    uploads = set((daemon.data_dir / "uploads").glob("*"))
    with daemon.client() as client:
        response = client.post(
            "/api/v1/upscale", json={"image": b64(source), "upscaler": "tiny-sr", "scale": 2}
        )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert set((daemon.data_dir / "uploads").glob("*")) == uploads  # read, not kept
    image = Image.open(io.BytesIO(response.content))
    assert max_diff(image, reference_sr(source, model)) <= 1
    assert (
        image.info["postprocessing"] == "Postprocess upscale by: 2, Postprocess upscaler: tiny-sr"
    )


def test_upscale_an_output_keeps_its_parameters(daemon: Daemon) -> None:
    done, generated = run_job(daemon, {**TINY, "prompt": "a lighthouse", "seed": 3})
    url = done["results"][0]["url"]
    with daemon.client() as client:
        response = client.post(
            "/api/v1/upscale", json={"image": url, "upscaler": "Nearest", "scale": 2}
        )
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.tobytes() == generated.resize((128, 128), Image.Resampling.NEAREST).tobytes()
    assert image.info["parameters"] == generated.info["parameters"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"image": "upload:" + "0" * 32, "upscaler": "lanczos"}, "image"),
        ({"image": "nojob/0", "upscaler": "lanczos"}, "image"),
        ({"image": "A", "upscaler": "esrgan"}, "upscaler"),
        ({"image": "A", "scale": 9}, "scale"),
        # Under 1 the destination could be 0 pixels wide (was a 500); A1111's bound too.
        ({"image": "A", "scale": 5e-324}, "scale: must be a number between 1 and 8"),
        ({"image": "A", "scale": 0.5}, "scale: must be a number between 1 and 8"),
        ({"image": "A", "width": 64}, "width"),
    ],
)
def test_bad_upscale_requests_name_the_field(
    daemon: Daemon, body: dict[str, Any], field: str
) -> None:
    if body["image"] == "A":
        body = {**body, "image": b64(pattern(8, 8))}
    with daemon.client() as client:
        response = client.post("/api/v1/upscale", json=body)
    assert response.status_code in (400, 404, 422), response.text
    assert field in response.text


def test_hires_fix_through_the_model(daemon: Daemon) -> None:
    hires = {"scale": 2, "upscaler": "tiny-sr", "steps": 2, "strength": 0.5}
    done, image = run_job(daemon, {**TINY, "prompt": "a lighthouse", "seed": 9, "hires": hires})
    assert image.size == (128, 128)
    assert done["plan"]["hires"]["upscaler"] == "tiny-sr"
    assert parse_a1111_parameters(image.info["parameters"])["extra"]["Hires upscaler"] == "tiny-sr"
    with daemon.client() as client:
        bad = {**TINY, "prompt": "x", "hires": {"upscaler": "esrgan"}}
        response = client.post("/api/v1/generate", json=bad)
    assert response.status_code == 422 and "hires.upscaler" in response.text
    assert "tiny-sr" in response.text


def test_a1111_hires_upscaler_names_the_model(daemon: Daemon) -> None:
    api = webuiapi.WebUIApi(baseurl=f"{daemon.url}/sdapi/v1", steps=4)
    result = api.txt2img(
        prompt="a lighthouse",
        width=64,
        height=64,
        enable_hr=True,
        hr_scale=2,
        hr_upscaler="tiny-sr",
        hr_second_pass_steps=2,
        denoising_strength=0.5,
        seed=4,
    )
    assert result.image.size == (128, 128)
    assert "Hires upscaler: tiny-sr" in result.image.info["parameters"]


def test_sd_upscale_is_a_job_with_progress_over_every_tile(daemon: Daemon) -> None:
    source = pattern(48, 40)
    body = {
        **TINY,
        "prompt": "a lighthouse",
        "seed": 11,
        "strength": 0.5,
        "init_image": b64(source),
        "sd_upscale": {"scale": 2, "overlap": 16, "upscaler": "lanczos"},
    }
    done, image = run_job(daemon, body)
    assert image.size == (96, 80) and done["results"][0]["width"] == 96
    assert done["plan"]["sd_upscale"] == {
        "scale": 2.0,
        "overlap": 16,
        "upscaler": "lanczos",
        "width": 96,
        "height": 80,
    }
    # Four 64x64 tiles of two img2img calls each count as one run.
    assert (done["current_step"], done["total_steps"]) == (8, 8), done
    params = parse_a1111_parameters(image.info["parameters"])
    assert params["extra"]["SD upscale overlap"] == "16"
    assert params["extra"]["SD upscale upscaler"] == "Lanczos"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"init_image": None}, "init_image"),
        ({"sd_upscale": {"scale": 1, "upscaler": "lanczos"}, "width": 128}, "sd_upscale.scale"),
        # 48x40 scaled by 2 is 96x80: wide enough for a 64-pixel tile, too short for 128.
        ({"sd_upscale": {"scale": 2}, "height": 128}, "is shorter than a tile (64x128)"),
        ({"sd_upscale": {"overlap": 64}}, "sd_upscale.overlap"),
        ({"sd_upscale": {"upscaler": "esrgan"}}, "sd_upscale.upscaler"),
        ({"batch_size": 2}, "sd_upscale"),
    ],
)
def test_bad_sd_upscale_requests_name_the_field(
    daemon: Daemon, extra: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        **TINY,
        "prompt": "x",
        "init_image": b64(pattern(48, 40)),
        "sd_upscale": {"scale": 2},
        **extra,
    }
    body = {k: v for k, v in body.items() if v is not None}
    with daemon.client() as client:
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422, response.text
    assert field in response.text


def cli(daemon: Daemon, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "IMPASTO_RUNTIME_DIR": str(daemon.runtime_dir)}
    return subprocess.run(
        [sys.executable, "-m", "impasto", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_cli_upscales_a_file_and_an_output(daemon: Daemon, model: Path, tmp_path: Path) -> None:
    source = pattern(24, 16)
    source.save(tmp_path / "in.png")
    done = cli(
        daemon,
        "upscale",
        str(tmp_path / "in.png"),
        "--upscaler",
        "tiny-sr",
        "--scale",
        "2",
        "-o",
        str(tmp_path / "out.png"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "out.png")
    assert max_diff(Image.open(tmp_path / "out.png"), reference_sr(source, model)) <= 1

    job, _ = run_job(daemon, {**TINY, "prompt": "a lighthouse", "seed": 3})
    ref = job["results"][0]["url"].removeprefix("/api/v1/images/")
    done = cli(
        daemon,
        "upscale",
        ref,
        "--upscaler",
        "nearest",
        "--width",
        "96",
        "--height",
        "80",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    written = tmp_path / f"{ref.replace('/', '-')}-nearest.png"
    assert done.stdout.strip() == written.name and Image.open(written).size == (96, 80)

    listing = cli(daemon, "upscalers")
    assert listing.returncode == 0 and "tiny-sr  (model)  2x" in listing.stdout
    bad = cli(daemon, "upscale", str(tmp_path / "in.png"), "--upscaler", "esrgan")
    assert bad.returncode == 1 and "upscaler" in bad.stderr and "tiny-sr" in bad.stderr


def test_client_upscale_calls(daemon: Daemon) -> None:
    with Client(base_url=daemon.url, token=daemon.token or None) as client:
        names = [u.id for u in client.upscalers()]
        png = client.upscale(b64(pattern(16, 16)), "lanczos", 3)
    assert names == ["none", "lanczos", "nearest", "tiny-sr"]
    assert Image.open(io.BytesIO(png)).size == (48, 48)


def test_an_unreadable_upscaler_model_is_a_422_naming_it(daemon: Daemon, model: Path) -> None:
    """A broken file in upscalers/ (a failed copy, not ONNX) blames the field that chose it,
    names the model and not its local path; listings still answer."""
    broken = model.with_name("broken-sr.onnx")
    broken.write_bytes(b"\x08\x07 not really a protobuf")
    try:
        with daemon.client() as client:
            listed = client.get("/api/v1/upscalers")
            native = client.post(
                "/api/v1/upscale", json={"image": b64(pattern(8, 8)), "upscaler": "broken-sr"}
            )
            a1111 = client.post(
                "/sdapi/v1/extra-single-image",
                json={"image": b64(pattern(8, 8)), "upscaler_1": "broken-sr"},
            )
    finally:
        broken.unlink()
    assert listed.status_code == 200 and "broken-sr" in listed.text
    assert native.status_code == 422 and native.json()["errors"][0]["field"] == "upscaler"
    assert a1111.status_code == 422 and a1111.json()["detail"][0]["loc"] == ["body", "upscaler_1"]
    for answer in (native, a1111):
        assert "'broken-sr' is not a readable ONNX model" in answer.text
        assert str(daemon.root) not in answer.text
