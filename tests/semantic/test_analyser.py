"""The analyser reads the training world's own drawings correctly (no model involved)."""

from __future__ import annotations

import random

from PIL import Image

from tests.semantic.analyser import analyse, world


def test_reads_drawn_scenes() -> None:
    rng = random.Random(7)
    right = total = 0
    for prompt in world.test_prompts(60, seed=7):
        scene = world.parse(prompt)
        verdict = analyse(world.render(scene, rng)).matches(scene)
        right += all(verdict.values())
        total += 1
    assert right / total >= 0.97, right / total


def test_each_shape_and_colour_is_told_apart() -> None:
    for shape in world.SHAPES:
        for colour in world.COLOURS:
            background = "black" if colour != "black" else "white"
            scene = world.parse(f"a {colour} {shape} on a {background} background")
            reading = analyse(world.render(scene, random.Random(0)))
            assert (reading.shape, reading.colour, reading.background) == (
                shape,
                colour,
                background,
            ), (shape, colour)


def test_positions_and_a_blank_picture() -> None:
    for position in world.POSITIONS:
        scene = world.parse(f"a large blue ring {position} on a white background")
        assert analyse(world.render(scene, random.Random(1))).position == position
    blank = analyse(Image.new("RGB", (128, 128), world.COLOURS["green"]))
    assert (blank.background, blank.shape, blank.colour) == ("green", None, None)


def test_reads_any_size() -> None:
    scene = world.parse("a purple star on a yellow background")
    image = world.render(scene, random.Random(2)).resize((256, 256), Image.Resampling.NEAREST)
    reading = analyse(image)
    assert (reading.shape, reading.colour, reading.background) == ("star", "purple", "yellow")
