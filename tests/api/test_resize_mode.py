"""``resize_mode``: how an init image (and its mask) of another shape is laid out at width x
height before the run, as the plan stores it (A1111's Just resize, Crop and resize, Resize and
fill)."""

from __future__ import annotations

import base64
import io

import numpy as np
from litestar.testing import TestClient
from PIL import Image

from impasto.services.container import Services

BODY = {"prompt": "a frieze", "width": 64, "height": 64, "steps": 2}


def _b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _bands(width: int, height: int, edge: int, vertical: bool) -> np.ndarray:
    """Grey, with a green band ``edge`` deep at the start and a red one at the end (rows, or
    columns when ``vertical``)."""
    pixels = np.full((height, width, 3), 128, np.uint8)
    start, end = (np.s_[:, :edge], np.s_[:, -edge:]) if vertical else (np.s_[:edge], np.s_[-edge:])
    pixels[start], pixels[end] = (0, 200, 0), (200, 0, 0)
    return pixels


def _planned(api: TestClient, services: Services, **fields: object) -> dict[str, np.ndarray]:
    """The stored init image and mask (those it has) of a job queued for the request, as
    pixels (a dry run's plan keeps none)."""
    answer = api.post("/api/v1/generate", json={**BODY, **fields})
    assert answer.status_code == 202, answer.text
    plan = api.get(f"/api/v1/generate/{answer.json()['id']}").json()["plan"]
    stored = {}
    for key in ("init_image", "mask_image"):
        if plan[key]:
            path = services.uploads.path_of(plan[key].removeprefix("upload:"))
            with Image.open(path) as image:
                stored[key] = np.asarray(image)
    return stored


def test_crop_keeps_the_centre_and_fill_extends_the_edges(
    api: TestClient, services: Services
) -> None:
    wide = _bands(128, 64, 40, vertical=True)  # 40 green, 48 grey, 40 red columns
    mask = np.zeros((64, 128), np.uint8)
    mask[:, :64] = 255  # the left half
    sent = {"init_image": _b64(Image.fromarray(wide)), "mask_image": _b64(Image.fromarray(mask))}
    cropped = _planned(api, services, **sent, resize_mode="crop")
    assert np.array_equal(cropped["init_image"], wide[:, 32:96])
    assert np.array_equal(cropped["mask_image"], mask[:, 32:96])
    low = _bands(64, 32, 4, vertical=False)  # as wide as the canvas: placed as it is
    filled = _planned(api, services, init_image=_b64(Image.fromarray(low)), resize_mode="fill")
    assert np.array_equal(filled["init_image"], _bands(64, 64, 16 + 4, vertical=False))
    stretched = _planned(api, services, init_image=_b64(Image.fromarray(low)))
    # Stretched as A1111 stretches: Lanczos, the bands twice as deep.
    lanczos = Image.fromarray(low).resize((64, 64), Image.Resampling.LANCZOS)
    assert np.array_equal(stretched["init_image"], np.asarray(lanczos))
    assert not np.array_equal(stretched["init_image"], filled["init_image"])


def test_a_resize_mode_needs_an_init_image_and_a_known_name(
    api: TestClient, services: Services
) -> None:
    for body, words in (
        ({**BODY, "resize_mode": "crop"}, "init_image"),
        ({**BODY, "init_image": _b64(Image.new("RGB", (8, 8))), "resize_mode": "cover"}, "fill"),
        (  # SD upscale works on the image at its own size
            {**BODY, "init_image": _b64(Image.new("RGB", (8, 8))), "resize_mode": "crop"}
            | {"sd_upscale": {"scale": 2}},
            "own size",
        ),
    ):
        refused = api.post("/api/v1/generate", json=body)
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert error["field"] == "resize_mode" and words in error["message"], error
    assert services.jobs.store.count_queued() == 0


def test_latent_keeps_the_image_at_its_own_size_for_the_engine(
    api: TestClient, services: Services
) -> None:
    """``latent``: the image is stored at its own size (down to multiples of 8, as Lanczos
    stretches it) and the plan says to resize its latents; at the run's size nothing is
    resized."""
    wide = _bands(128, 64, 40, vertical=True)
    answer = api.post(
        "/api/v1/generate/plan",
        json={**BODY, "init_image": _b64(Image.fromarray(wide)), "resize_mode": "latent"},
    )
    assert answer.status_code in (200, 201), answer.text
    assert answer.json()["latent_resize"] is True
    stored = _planned(api, services, init_image=_b64(Image.fromarray(wide)), resize_mode="latent")
    assert np.array_equal(stored["init_image"], wide)
    odd = _bands(100, 70, 10, vertical=False)
    snapped = _planned(api, services, init_image=_b64(Image.fromarray(odd)), resize_mode="latent")
    lanczos = Image.fromarray(odd).resize((96, 64), Image.Resampling.LANCZOS)
    assert np.array_equal(snapped["init_image"], np.asarray(lanczos))
    same = {**BODY, "init_image": _b64(Image.fromarray(wide[:, :64])), "resize_mode": "latent"}
    plan = api.post("/api/v1/generate/plan", json=same).json()
    assert plan["latent_resize"] is False
    # With a mask of the run's size beside it: no latent resize, so the mask is kept.
    mask = _b64(Image.new("L", (64, 64), 255))
    assert api.post("/api/v1/generate/plan", json={**same, "mask_image": mask}).status_code < 300


def test_what_a_latent_resize_refuses(api: TestClient, services: Services) -> None:
    wide = _b64(Image.fromarray(_bands(128, 64, 40, vertical=True)))
    latent = {**BODY, "init_image": wide, "resize_mode": "latent"}
    for body, field, words in (
        ({**latent, "mask_image": _b64(Image.new("L", (128, 64)))}, "resize_mode", "mask"),
        ({**latent, "model": "sd-tiny-inpaint"}, "resize_mode", "inpainting model"),
        ({**latent, "init_image": _b64(Image.new("RGB", (48, 100)))}, "init_image", "48x100"),
        ({**latent, "init_image": _b64(Image.new("RGB", (2100, 64)))}, "init_image", "2048"),
    ):
        refused = api.post("/api/v1/generate", json=body)
        assert refused.status_code == 422, refused.text
        error = refused.json()["errors"][0]
        assert error["field"] == field and words in error["message"], error
    assert services.jobs.store.count_queued() == 0


def test_a_sliver_fills_and_a_crop_that_would_scale_too_far_is_refused(
    api: TestClient, services: Services
) -> None:
    """A 600x4 picture filled into 64x64 scales to 64x1 (not 64x0, a 500); a 16000x4 one
    cropped to 2048x2048 would scale to 8192000x2048 first: a 422 naming init_image."""
    sliver = np.zeros((4, 600, 3), np.uint8)
    sliver[:, :, 0] = 200
    stored = _planned(api, services, init_image=_b64(Image.fromarray(sliver)), resize_mode="fill")
    assert stored["init_image"].shape == (64, 64, 3)
    assert (stored["init_image"][..., 0] > 150).all()  # the sliver's edge filled both sides
    huge = {**BODY, "width": 2048, "height": 2048, "resize_mode": "crop"}
    huge["init_image"] = _b64(Image.new("RGB", (16000, 4)))
    queued = services.jobs.store.count_queued()
    refused = api.post("/api/v1/generate", json=huge)
    assert refused.status_code == 422, refused.text
    error = refused.json()["errors"][0]
    assert error["field"] == "init_image" and "8192000x2048" in error["message"], error
    assert services.jobs.store.count_queued() == queued
