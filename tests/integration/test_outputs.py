"""What happens to a picture after its job, through a real daemon: its file name on download,
a file deleted by hand, the VAE in its parameters read back by an A1111 client, and upscaling
a transparent picture with every kind of upscaler."""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.harness import REPO, TINY, Daemon, running_daemon, wait_status
from tests.sr_model import write_sr_model

VAE = "sd-tiny-vae-alt"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    root = tmp_path_factory.mktemp("outputs")
    models = root / "data" / "models"
    write_sr_model(models / "upscalers" / "tiny-sr.onnx", scale=2)
    shutil.copytree(REPO / "models" / "tiny" / "adapters" / "vae" / VAE, models / "vae" / VAE)
    with running_daemon(root, preview_every=0) as running:
        yield running


def generate(daemon: Daemon, **fields: Any) -> dict[str, Any]:
    with daemon.client() as client:
        response = client.post("/api/v1/generate", json={"prompt": "a circle", **TINY, **fields})
        assert response.status_code == 202, response.text
        done = wait_status(client, response.json()["id"], {"completed", "failed", "cancelled"})
    assert done["status"] == "completed", done
    return done


def encoded(image: Image.Image, **options: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **options)
    return base64.b64encode(buf.getvalue()).decode()


def test_an_image_names_its_file(daemon: Daemon) -> None:
    """`curl -OJ` and a browser's "Save as" get the output's name, not "0"."""
    job = generate(daemon)
    url = job["results"][0]["url"]
    with daemon.client() as client:
        full = client.get(url)
        head = client.head(url)
        thumb = client.get(url, params={"thumb": 32})
    name = f"{job['id']}-0.png"
    assert job["results"][0]["image_path"].endswith(name)
    assert full.headers["content-disposition"] == f'inline; filename="{name}"'
    assert head.headers["content-disposition"] == full.headers["content-disposition"]
    assert thumb.headers["content-type"] == "image/jpeg"
    assert thumb.headers["content-disposition"] == f'inline; filename="{job["id"]}-0-thumb32.jpg"'


def test_a_file_deleted_by_hand_is_a_404_that_says_so(daemon: Daemon) -> None:
    job = generate(daemon)
    result = job["results"][0]
    (daemon.data_dir / "outputs" / result["image_path"]).unlink()
    with daemon.client() as client:
        for params in ({}, {"thumb": 64}):
            response = client.get(result["url"], params=params)
            assert response.status_code == 404
            detail = response.json()["detail"]
            assert f"{job['id']}-0.png is no longer in the output folder" in detail
            assert f"DELETE /api/v1/generate/{job['id']}" in detail
        upscale = client.post("/api/v1/upscale", json={"image": result["url"]})
        assert upscale.status_code == 422
        assert "no longer in the output folder" in upscale.json()["detail"]
        # What the message says to do works, once.
        assert client.delete(f"/api/v1/generate/{job['id']}").status_code == 204
        assert client.delete(f"/api/v1/generate/{job['id']}").status_code == 404


def test_the_vae_reaches_the_text_and_comes_back_through_infotext(daemon: Daemon) -> None:
    job = generate(daemon, vae=VAE)
    text = job["results"][0]["metadata"]["parameters"]
    assert f"Model: sd-tiny, VAE: {VAE}" in text
    with daemon.client() as client:
        # An A1111 client pasting the picture's text runs it with the same VAE; A1111's own
        # text names the VAE's file.
        for pasted in (text, text.replace(f"VAE: {VAE}", f"VAE: {VAE}.safetensors")):
            body = {"infotext": pasted, "steps": 2}
            answer = client.post("/sdapi/v1/txt2img", json=body, timeout=120)
            assert answer.status_code == 200, answer.text
            assert json.loads(answer.json()["info"])["sd_vae_name"] == VAE
        # One this machine lacks is left out, as A1111 leaves it out.
        other = {"infotext": text.replace(VAE, "not-here"), "steps": 2}
        answer = client.post("/sdapi/v1/txt2img", json=other, timeout=120)
        assert answer.status_code == 200, answer.text
        assert json.loads(answer.json()["info"])["sd_vae_name"] is None


def alpha_ramp(mode: str) -> Image.Image:
    """A picture whose transparency runs from clear on the left to opaque on the right."""
    alpha = np.tile(np.linspace(0, 255, 24).astype(np.uint8), (16, 1))
    colour = Image.new("RGB", (24, 16), (200, 40, 90))
    image = colour.convert("L") if mode == "LA" else colour
    image.putalpha(Image.fromarray(alpha, "L"))
    return image


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
@pytest.mark.parametrize("upscaler", ["tiny-sr", "lanczos"])
def test_upscaling_keeps_transparency(daemon: Daemon, mode: str, upscaler: str) -> None:
    """A model sees RGB only; its result gets the picture's alpha (and greyness) back, so a
    transparent picture comes back transparent whichever upscaler ran."""
    source = alpha_ramp(mode)
    body = {"image": encoded(source), "upscaler": upscaler, "scale": 2}
    with daemon.client() as client:
        response = client.post("/api/v1/upscale", json=body)
        extras = client.post(
            "/sdapi/v1/extra-single-image",
            json={"image": body["image"], "upscaler_1": upscaler, "upscaling_resize": 2},
        )
    assert response.status_code == 200, response.text
    assert extras.status_code == 200, extras.text
    for data in (response.content, base64.b64decode(extras.json()["image"])):
        image = Image.open(io.BytesIO(data))
        assert (image.mode, image.size) == (mode, (48, 32))
        alpha = np.asarray(image.getchannel("A"), dtype=np.int16)
        expected = np.asarray(source.getchannel("A").resize((48, 32), Image.Resampling.LANCZOS))
        assert np.abs(alpha - expected).max() <= 1


def test_a_palette_picture_is_filtered_not_copied_pixel_by_pixel(daemon: Daemon) -> None:
    """Pillow resizes a palette image by its nearest pixel whatever the filter: Lanczos on a
    GIF-like PNG must blend, and keep its transparent colour transparent."""
    source = Image.new("P", (16, 16))
    source.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    source.paste(1, (8, 0, 16, 16))  # black left half, white right half
    body = {"image": encoded(source, transparency=0), "upscaler": "lanczos", "scale": 4}
    with daemon.client() as client:
        response = client.post("/api/v1/upscale", json=body)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGBA"
    row = np.asarray(image)[32, :, 3]
    assert row[0] == 0 and row[-1] == 255
    assert any(0 < value < 255 for value in row)  # a filtered edge, not a hard step


def test_an_a1111_jpeg_keeps_its_parameters_through_an_upscale(daemon: Daemon) -> None:
    """A1111 saves a JPEG's or WebP's parameters in EXIF's UserComment (UTF-16, "UNICODE"
    first); the upscaled PNG carries them as its ``parameters`` text, as A1111's extras do."""
    text = "a castle, ünïcødé\nNegative prompt: fog\nSteps: 20, Sampler: Euler a, Seed: 5"
    image = Image.new("RGB", (24, 16), (10, 120, 200))
    exif = image.getexif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + text.encode("utf-16-be")
    for kind in ("JPEG", "WEBP"):
        buf = io.BytesIO()
        image.save(buf, format=kind, exif=exif)
        data = base64.b64encode(buf.getvalue()).decode()
        with daemon.client() as client:
            native = client.post("/api/v1/upscale", json={"image": data, "scale": 2})
            extras = client.post(
                "/sdapi/v1/extra-single-image",
                json={"image": data, "upscaler_1": "Lanczos", "upscaling_resize": 2},
            )
        assert native.status_code == 200 and extras.status_code == 200, (native, extras)
        for png in (native.content, base64.b64decode(extras.json()["image"])):
            result = Image.open(io.BytesIO(png))
            assert result.info["parameters"] == text, kind
            assert result.info["postprocessing"].startswith("Postprocess upscale by: 2")
