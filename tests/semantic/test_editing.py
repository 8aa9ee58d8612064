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
from tests.semantic.analyser import Reading, analyse, world
from tests.semantic.jobs import MODEL, RECOMMENDED, data_uri, generate

SOURCE = "a red square on the left on a white background"
TARGET = "a blue circle on the right on a green background"


def _source() -> Image.Image:
    return world.render(world.parse(SOURCE), random.Random(0))


def _img2img(daemon: Daemon, strength: float) -> list[Reading]:
    init = data_uri(_source())
    bodies = [
        {"prompt": TARGET, "init_image": init, "strength": strength, "seed": seed}
        for seed in range(4)
    ]
    return [analyse(image) for image in generate(daemon, bodies)]


@pytest.mark.xfail(
    strict=True,
    reason="impasto-shapes keeps the background and the side at 0.3 but draws the square as "
    "the prompt's circle (4 of 4 seeds; models/README.md, 'Inpainting the whole picture' and "
    "'Toward img2img at low strength')",
)
def test_img2img_keeps_the_layout_at_low_strength(shapes_daemon: Daemon) -> None:
    for reading in _img2img(shapes_daemon, 0.3):
        # The layout: what is where. (Colours drift with this VAE; the table says how much.)
        assert (reading.background, reading.shape, reading.position) == (
            "white",
            "square",
            "on the left",
        )


def test_img2img_follows_the_prompt_at_high_strength(shapes_daemon: Daemon) -> None:
    """At 0.9 the new prompt's scene replaces the source's (white, red, square): background,
    colour and shape, the attributes the accuracy bar counts (positions are this model's
    weakest words, right about half the time even from text alone)."""
    readings = _img2img(shapes_daemon, 0.9)
    hits = sum((r.background, r.colour, r.shape) == ("green", "blue", "circle") for r in readings)
    assert hits >= 3, readings


RIGHT_HALF = (64, 0, 128, 128)
# Where a user paints to add something beside the square: a patch of the right half.
PATCH = (72, 32, 120, 96)


def _mask(box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, box)
    return mask


def _inpaint(
    daemon: Daemon, prompt: str, box: tuple[int, int, int, int], **options: object
) -> tuple[Image.Image, list[Image.Image]]:
    """The source and four inpaintings of ``box`` (where the square is not)."""
    source = _source()
    bodies = [
        {
            "prompt": prompt,
            "init_image": data_uri(source),
            "mask_image": data_uri(_mask(box)),
            "strength": 1.0,
            "seed": seed,
            **options,
        }
        for seed in range(4)
    ]
    return source, generate(daemon, bodies)


def test_inpainting_keeps_everything_outside_the_mask(shapes_daemon: Daemon) -> None:
    source, images = _inpaint(
        shapes_daemon, "a yellow star on the right on a white background", RIGHT_HALF
    )
    before = np.asarray(source, dtype=np.int16)
    for image in images:
        after = np.asarray(image, dtype=np.int16)
        # Outside the mask: the source, within what a VAE round trip and the seam blur allow.
        outside = np.abs(after[:, :56] - before[:, :56]).mean()
        assert outside < 6, outside


def _right_half(images: list[Image.Image]) -> list[Reading]:
    """The analyser's reading of the right half of each picture, enlarged to a whole one."""
    return [analyse(image.crop(RIGHT_HALF).resize((128, 128))) for image in images]


def test_inpainting_only_the_masked_area_draws_the_prompt_inside_the_mask(
    shapes_daemon: Daemon,
) -> None:
    """Inpaint area "only masked" at A1111's API default padding (0): the patch, grown to a
    square, at the model's size. (With padding enough to bring the red square into the crop,
    this model draws nothing new: it knows scenes of one object, and there is one.)"""
    source, images = _inpaint(
        shapes_daemon,
        "a yellow star on a white background",
        PATCH,
        inpaint_area="masked",
        inpaint_padding=0,
    )
    inside = np.asarray(_mask(PATCH)) > 0
    for image in images:
        assert image.size == source.size
        assert np.array_equal(np.asarray(image)[~inside], np.asarray(source)[~inside])
    readings = _right_half(images)
    assert sum(r.colour == "yellow" for r in readings) >= 3, readings


def test_inpainting_the_whole_picture_with_a_prompt_for_all_of_it_draws_the_new_object(
    shapes_daemon: Daemon,
) -> None:
    """Whole-picture inpainting as A1111 users are told to prompt it: the prompt describes the
    whole picture. The model draws two-object scenes first-left, second-right, so the right
    half gets the second object while the left keeps the source's square."""
    source, images = _inpaint(
        shapes_daemon, "a red square and a blue circle on a white background", RIGHT_HALF
    )
    before = np.asarray(source, dtype=np.int16)
    for image in images:
        # The source's own square, not one drawn anew from the prompt's first words.
        assert np.abs(np.asarray(image, dtype=np.int16)[:, :56] - before[:, :56]).mean() < 6
    readings = _right_half(images)
    drawn = [(r.colour, r.shape) for r in readings]
    assert drawn.count(("blue", "circle")) >= 3, readings


@pytest.mark.xfail(
    strict=True,
    reason="impasto-shapes has no inpainting UNet; inpainting half the whole picture with a "
    "prompt for the new object alone draws it in 2 of 4 seeds (orange, not yellow): the picture "
    "already holds one object and the prompt speaks of one (a prompt for the whole picture "
    "works, test above; so does inpaint_area masked)",
)
def test_inpainting_the_whole_picture_draws_the_prompt_inside_the_mask(
    shapes_daemon: Daemon,
) -> None:
    _, images = _inpaint(
        shapes_daemon, "a yellow star on the right on a white background", RIGHT_HALF
    )
    readings = _right_half(images)
    assert sum(r.colour == "yellow" for r in readings) >= 3, readings


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
        # Impasto's extension: without a seed each run draws a random one, and a test that
        # reads one picture would fail as often as the model misses (about one in five).
        extra_body={"seed": 3},
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
