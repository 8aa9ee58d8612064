"""A1111's prompt editing and composable prompts, judged by what the pictures show.

tests/engine/test_prompt_editing.py and test_composable.py check the arithmetic against
diffusers and A1111's formula; these check that it means what users write it for: an edit
early in the run draws the second scene and a late one the first (the layout and colours
settle in the first steps), and each part of an ``AND`` prompt adds its own attribute.
"""

from __future__ import annotations

from tests.harness import Daemon
from tests.semantic.analyser import analyse
from tests.semantic.jobs import generate

RED_ON_WHITE = "a red circle on a white background"
BLUE_ON_GREEN = "a blue square on a green background"
SEEDS = range(4)


def _scenes(daemon: Daemon, prompt: str) -> list[tuple[str, str]]:
    images = generate(daemon, [{"prompt": prompt, "seed": seed} for seed in SEEDS])
    return [(r.background, r.colour) for r in map(analyse, images)]


def _asked(prompt: str) -> tuple[str, str]:
    """(background, shape colour) a prompt of the form above asks for."""
    words = prompt.split()
    return words[-2], words[1]


def test_an_early_edit_draws_the_second_scene_and_a_late_one_the_first(
    shapes_daemon: Daemon,
) -> None:
    for first, second in ((RED_ON_WHITE, BLUE_ON_GREEN), (BLUE_ON_GREEN, RED_ON_WHITE)):
        early = _scenes(shapes_daemon, f"[{first}:{second}:0.1]")
        late = _scenes(shapes_daemon, f"[{first}:{second}:0.8]")
        assert sum(scene == _asked(second) for scene in early) >= 3, (first, early)
        assert sum(scene == _asked(first) for scene in late) >= 3, (first, late)


def test_each_part_of_an_and_prompt_adds_its_own_attribute(shapes_daemon: Daemon) -> None:
    """The first part gives the background, the second the colour; the first alone draws
    its circle in another colour."""
    alone = _scenes(shapes_daemon, "a circle on a white background")
    assert sum(colour == "red" for _, colour in alone) <= 1, alone
    for colour in ("red", "blue"):
        composed = _scenes(shapes_daemon, f"a circle on a white background AND a {colour} circle")
        assert sum(scene == ("white", colour) for scene in composed) >= 3, (colour, composed)
