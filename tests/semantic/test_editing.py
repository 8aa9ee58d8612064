"""img2img, inpainting, seeds and the compat APIs, judged by what the pictures show."""

from __future__ import annotations

import base64
import io
import random

import numpy as np
import openai
import pytest
from PIL import Image

from tests.harness import Daemon
from tests.semantic.analyser import analyse, world
from tests.semantic.jobs import FOLLOWING, MODEL, RECOMMENDED, data_uri, generate

SOURCE = "a red square on the left on a white background"
TARGET = "a blue circle on the right on a green background"


def _source() -> Image.Image:
    return world.render(world.parse(SOURCE), random.Random(0))


@FOLLOWING
def test_img2img_keeps_the_layout_at_low_strength_and_follows_the_prompt_at_high(
    shapes_daemon: Daemon,
) -> None:
    init = data_uri(_source())
    low, high = (
        generate(
            shapes_daemon,
            [
                {"prompt": TARGET, "init_image": init, "strength": s, "seed": seed}
                for seed in range(4)
            ],
        )
        for s in (0.3, 0.9)
    )
    for image in low:
        reading = analyse(image)
        # The layout: what is where. (Colours drift with this VAE; the table says how much.)
        assert (reading.background, reading.shape, reading.position) == (
            "white",
            "square",
            "on the left",
        )
    followed = [analyse(image) for image in high]
    hits = sum(
        (r.background, r.colour, r.shape, r.position) == ("green", "blue", "circle", "on the right")
        for r in followed
    )
    assert hits >= 3, followed


def _inpaint(daemon: Daemon) -> tuple[Image.Image, list[Image.Image]]:
    """The source and four inpaintings of its right half (where the square is not)."""
    source = _source()
    mask = Image.new("L", source.size, 0)
    mask.paste(255, (64, 0, 128, 128))
    prompt = "a yellow star on the right on a white background"
    bodies = [
        {
            "prompt": prompt,
            "init_image": data_uri(source),
            "mask_image": data_uri(mask),
            "strength": 1.0,
            "seed": seed,
        }
        for seed in range(4)
    ]
    return source, generate(daemon, bodies)


def test_inpainting_keeps_everything_outside_the_mask(shapes_daemon: Daemon) -> None:
    source, images = _inpaint(shapes_daemon)
    before = np.asarray(source, dtype=np.int16)
    for image in images:
        after = np.asarray(image, dtype=np.int16)
        # Outside the mask: the source, within what a VAE round trip and the seam blur allow.
        outside = np.abs(after[:, :56] - before[:, :56]).mean()
        assert outside < 6, outside


@pytest.mark.xfail(
    strict=True,
    reason="impasto-shapes has no inpainting UNet; with latent masking it leaves the masked "
    "half blank (it draws its objects at the centre, and positions are its weakest words)",
)
def test_inpainting_draws_the_prompt_inside_the_mask(shapes_daemon: Daemon) -> None:
    _, images = _inpaint(shapes_daemon)
    right = [analyse(image.crop((64, 0, 128, 128)).resize((128, 128))) for image in images]
    assert sum(reading.colour == "yellow" for reading in right) >= 3, right


def test_same_seed_same_picture_and_other_seeds_other_layouts(shapes_daemon: Daemon) -> None:
    bodies = [{"prompt": "a circle", "seed": seed} for seed in (5, 5, 6, 7, 8)]
    images = generate(shapes_daemon, bodies)
    arrays = [np.asarray(image) for image in images]
    assert np.array_equal(arrays[0], arrays[1])
    readings = [analyse(image) for image in images[1:]]
    layouts = {(r.background, r.colour, r.position) for r in readings}
    assert len(layouts) >= 3, layouts


def test_a1111_txt2img_draws_the_prompt(shapes_daemon: Daemon) -> None:
    prompt = "a green triangle on a purple background"
    with shapes_daemon.client() as client:
        response = client.post(
            "/sdapi/v1/txt2img",
            json={
                "prompt": prompt,
                "width": 128,
                "height": 128,
                "steps": 20,
                "cfg_scale": 5,
                "seed": 3,
                "override_settings": {"sd_model_checkpoint": MODEL},
            },
            timeout=300,
        )
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["images"][0])))
    reading = analyse(image)
    assert (reading.background, reading.colour, reading.shape) == ("purple", "green", "triangle")


def test_openai_generations_draw_the_prompt(shapes_daemon: Daemon) -> None:
    client = openai.OpenAI(base_url=f"{shapes_daemon.url}/v1", api_key="unused", max_retries=0)
    response = client.images.generate(
        model=MODEL,
        prompt="a yellow star on a blue background",
        size="128x128",
        response_format="b64_json",
        timeout=300,
    )
    assert response.data and response.data[0].b64_json
    image = Image.open(io.BytesIO(base64.b64decode(response.data[0].b64_json)))
    reading = analyse(image)
    assert (reading.background, reading.colour, reading.shape) == ("blue", "yellow", "star")


def test_recommended_settings_are_what_the_model_lists(shapes_daemon: Daemon) -> None:
    with shapes_daemon.client() as client:
        models = client.get("/api/v1/models").json()
    entry = next(m for m in models if m["id"] == MODEL)
    for key in ("width", "height", "steps", "cfg_scale"):
        assert entry["defaults"][key] == RECOMMENDED[key]
    assert "shapes" in entry["description"]
