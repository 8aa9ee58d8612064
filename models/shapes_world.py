"""The flat world the `impasto-shapes` model knows: procedural scenes drawn with PIL, with captions.

One scene is one or two shapes on a plain background. `sample_scene(rng)` draws its
attributes, `caption(scene, rng)` words it (leaving out some attributes, which the picture
then chooses at random) and `render(scene)` paints it. The tests' analyser and the README
use the same vocabulary, so it lives here and nowhere else.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

SIZE = 128
SHAPES = ("circle", "square", "triangle", "star", "ring")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 225),
    "yellow": (245, 215, 30),
    "orange": (245, 130, 20),
    "purple": (140, 45, 185),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SIZES = {"small": 18, "large": 40}
MEDIUM_RADIUS = 28
POSITIONS = ("on the left", "on the right", "at the top", "at the bottom")
STYLES = ("striped", "outlined")
# The style the LoRA trained on top of the base model teaches (models/shapes_adapters.py):
# never drawn in the base model's training, and not a word of its vocabulary.
LORA_STYLE = "dotted"
# Where a position word puts the centre of a shape (x, y as fractions of the side).
ANCHORS = {
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
    None: (0.5, 0.5),
}


@dataclass(frozen=True)
class Thing:
    """One shape: what it is and the words its caption may use for it."""

    shape: str
    colour: str
    size: str | None = None  # None: medium
    style: str | None = None
    position: str | None = None  # None: the centre (or its half, in a pair)


@dataclass(frozen=True)
class Scene:
    """One or two things on a background; `said_*` say which words the caption keeps."""

    things: tuple[Thing, ...]
    background: str
    said_colour: bool = True
    said_background: bool = True


def sample_scene(rng: random.Random) -> Scene:
    """A random scene; about one in five holds two shapes (the first on the left)."""
    background = rng.choice(list(COLOURS))
    others = [c for c in COLOURS if c != background]
    if rng.random() < 0.2:
        first, second = rng.sample(others, 2)
        things: tuple[Thing, ...] = (
            Thing(rng.choice(SHAPES), first, position="on the left"),
            Thing(rng.choice(SHAPES), second, position="on the right"),
        )
        return Scene(things, background, said_background=rng.random() < 0.85)
    thing = Thing(
        shape=rng.choice(SHAPES),
        colour=rng.choice(others),
        size=rng.choice([None, None, "small", "large"]),
        style=rng.choice([None, None, None, None, "striped", "outlined"]),
        position=rng.choice([None, None, *POSITIONS]),
    )
    return Scene((thing,), background, rng.random() < 0.9, rng.random() < 0.85)


def _words(thing: Thing, said_colour: bool) -> str:
    words = [thing.size, thing.style, thing.colour if said_colour else None, thing.shape]
    return " ".join(w for w in words if w)


def _article(words: str) -> str:
    return f"an {words}" if words[0] in "aeiou" else f"a {words}"


def caption(scene: Scene) -> str:
    """The scene in words, e.g. `a large red circle on the left on a blue background`."""
    if len(scene.things) == 2:
        text = " and ".join(_article(_words(t, True)) for t in scene.things)
    else:
        thing = scene.things[0]
        text = _article(_words(thing, scene.said_colour))
        if thing.position:
            text += f" {thing.position}"
    if scene.said_background:
        text += f" on a {scene.background} background"
    return text


def parse(prompt: str) -> Scene:
    """The scene a prompt from this vocabulary asks for (attributes it leaves out are None)."""
    parts = prompt.strip().replace(" on an ", " on a ").split(" on a ")
    background = parts[1].removesuffix(" background") if len(parts) > 1 else ""
    things = []
    for chunk in parts[0].split(" and "):
        words = chunk.split()
        position = next((p for p in POSITIONS if chunk.endswith(p)), None)
        things.append(
            Thing(
                shape=next(w for w in words if w in SHAPES),
                colour=next((w for w in words if w in COLOURS), ""),
                size=next((w for w in words if w in SIZES), None),
                style=next((w for w in words if w in STYLES), None),
                position=position,
            )
        )
    return Scene(tuple(things), background, said_background=bool(background))


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * 0.15 - r * math.sin(a)) for a in _angles(3, r)]
    points = []
    for i, a in enumerate(_angles(10, r)):
        radius = r if i % 2 == 0 else r * 0.45
        points.append((cx + radius * math.cos(a), cy - radius * math.sin(a)))
    return points


def _angles(count: int, _r: float) -> list[float]:
    return [math.pi / 2 + 2 * math.pi * i / count for i in range(count)]


def _mask(thing: Thing, cx: float, cy: float, r: float) -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if thing.shape in ("circle", "ring"):
        draw.ellipse(box, fill=255)
        if thing.shape == "ring":
            h = r * 0.55
            draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=0)
    else:
        draw.polygon(_polygon(thing.shape, cx, cy, r), fill=255)
    return mask


def _place(thing: Thing, index: int, count: int, jitter: tuple[float, float, float]) -> tuple:
    r = SIZES.get(thing.size or "", MEDIUM_RADIUS) * (1 + jitter[2])
    if count == 2:
        r = MEDIUM_RADIUS * (0.85 + jitter[2])
        fx, fy = (0.27 if index == 0 else 0.73), 0.5
    else:
        fx, fy = ANCHORS[thing.position]
    cx = min(max(fx * SIZE + jitter[0], r + 2), SIZE - r - 2)
    cy = min(max(fy * SIZE + jitter[1], r + 2), SIZE - r - 2)
    return cx, cy, r


def render(scene: Scene, rng: random.Random | None = None) -> Image.Image:
    """Paint `scene` at 128x128; `rng` jitters positions and sizes a little."""
    rng = rng or random.Random(0)
    image = Image.new("RGB", (SIZE, SIZE), COLOURS[scene.background])
    for index, thing in enumerate(scene.things):
        jitter = (rng.uniform(-7, 7), rng.uniform(-7, 7), rng.uniform(-0.1, 0.1))
        cx, cy, r = _place(thing, index, len(scene.things), jitter)
        mask = _mask(thing, cx, cy, r)
        rgb = COLOURS[thing.colour]
        image.paste(rgb, mask=mask)
        if thing.style == LORA_STYLE:  # the LoRA's training pictures only
            dots = Image.new("L", (SIZE, SIZE), 0)
            draw = ImageDraw.Draw(dots)
            for y in range(6, SIZE, 16):
                for x in range(6, SIZE, 16):
                    draw.ellipse((x - 4.5, y - 4.5, x + 4.5, y + 4.5), fill=255)
            dark = tuple(int(c * 0.3) for c in rgb) if thing.colour != "black" else (200,) * 3
            image.paste(dark, mask=Image.fromarray(_and(dots, mask)))
        elif thing.style == "striped":
            dark = tuple(int(c * 0.45) for c in rgb) if thing.colour != "black" else (150,) * 3
            stripes = Image.new("L", (SIZE, SIZE), 0)
            draw = ImageDraw.Draw(stripes)
            for y in range(int(cy - r) + 4, int(cy + r), 12):
                draw.rectangle((0, y, SIZE, y + 4), fill=255)
            image.paste(dark, mask=Image.fromarray(_and(stripes, mask)))
        elif thing.style == "outlined":
            edge = (20, 20, 20) if thing.colour != "black" else (245, 245, 245)
            inner = _mask(thing, cx, cy, r - 3)
            if thing.shape == "ring":
                inner = _ring_inner(cx, cy, r)
            ring = Image.fromarray(_and(mask, inner, invert_second=True))
            image.paste(edge, mask=ring)
    return image


def _ring_inner(cx: float, cy: float, r: float) -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse((cx - r + 3, cy - r + 3, cx + r - 3, cy + r - 3), fill=255)
    h = r * 0.55 + 3
    draw.ellipse((cx - h, cy - h, cx + h, cy + h), fill=0)
    return mask


def _and(a: Image.Image, b: Image.Image, invert_second: bool = False):
    import numpy as np

    first, second = np.asarray(a) > 0, np.asarray(b) > 0
    if invert_second:
        second = ~second
    return ((first & second) * 255).astype(np.uint8)


def dataset(count: int, seed: int) -> list[tuple[Image.Image, str]]:
    """`count` (picture, caption) pairs, the same for the same seed."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        scene = sample_scene(rng)
        pairs.append((render(scene, rng), caption(scene)))
    return pairs


def test_prompts(count: int, seed: int) -> list[str]:
    """Single-object prompts that name colour, shape and background (size, place sometimes)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        background = rng.choice(list(COLOURS))
        thing = Thing(
            shape=rng.choice(SHAPES),
            colour=rng.choice([c for c in COLOURS if c != background]),
            size=rng.choice([None, None, "small", "large"]),
            position=rng.choice([None, None, *POSITIONS]),
        )
        prompts.append(caption(Scene((thing,), background)))
    return prompts
