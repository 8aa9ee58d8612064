"""The script framework's pieces without a daemon: argument reading, axis values, grids."""

from __future__ import annotations

import pytest
from PIL import Image

from impasto.services.errors import FieldError
from impasto.services.scripts.base import ScriptArg, parse_args
from impasto.services.scripts.grid import Label, annotate, image_grid
from impasto.services.scripts.registry import SCRIPTS, find_script, scripts_for
from impasto.services.scripts.xyz_axes import AXES, axes_for
from impasto.services.scripts.xyz_values import axis_values

STEPS = next(axis for axis in AXES if axis.label == "Steps")
CFG = next(axis for axis in AXES if axis.label == "CFG Scale")
PROMPT_SR = next(axis for axis in AXES if axis.label == "Prompt S/R")
SAMPLER = axes_for(False)[9]


def values(axis, text, dropdown=(), **flags):  # type: ignore[no-untyped-def]
    flags = {"csv_mode": False, "raw_mode": False, **flags}
    return axis_values(axis, text, list(dropdown), which="X", **flags)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-9 (+2)", [1, 3, 5, 7, 9]),
        ("5-1 (-2)", [5, 3]),
        ("1-10 [4]", [1, 4, 7, 10]),
        ("10, 20,30", [10, 20, 30]),
    ],
)
def test_integer_axis_values_read_a1111_ranges(text: str, expected: list[int]) -> None:
    assert values(STEPS, text) == expected


def test_float_ranges_and_prompt_sr_csv_quoting() -> None:
    assert values(CFG, "1-2 (+0.5)") == [1.0, 1.5, 2.0]
    assert values(CFG, "2-10 [5]") == [2.0, 4.0, 6.0, 8.0, 10.0]
    assert values(PROMPT_SR, 'red,"deep, dark blue"') == ["red", "deep, dark blue"]
    # A space before the quote too (A1111's csv reading would split this one).
    assert values(PROMPT_SR, 'red, "deep, dark blue"') == ["red", "deep, dark blue"]
    assert values(PROMPT_SR, "red\nblue, teal", raw_mode=True) == ["red", "blue, teal"]


def test_dropdown_list_wins_unless_csv_mode_and_text_fills_an_empty_list() -> None:
    assert values(SAMPLER, "Euler", ["DPM++ 2M", "LMS"]) == ["DPM++ 2M", "LMS"]
    assert values(SAMPLER, "Euler", ["DPM++ 2M"], csv_mode=True) == ["Euler"]
    assert values(SAMPLER, "Euler, LMS") == ["Euler", "LMS"]


@pytest.mark.parametrize("text", ["1-1000000000", "1-5 [500]", "", "1-5 (-1)", "four"])
def test_bad_or_huge_axis_values_are_refused_before_expanding(text: str) -> None:
    with pytest.raises(FieldError) as caught:
        values(STEPS, text)
    assert caught.value.field == "script_args"


def test_script_args_take_defaults_and_lenient_values() -> None:
    specs = [
        ScriptArg("Loops", "int", 4, minimum=1, maximum=32),
        ScriptArg("On", "bool", False),
        ScriptArg("Curve", "choice", "Linear", choices=("Aggressive", "Linear")),
        ScriptArg("Type", "index", "B", choices=("A", "B", "C")),
    ]
    assert parse_args(specs, None) == [4, False, "Linear", 1]
    assert parse_args(specs, ["7", "true", "aggressive", "c"]) == [7, True, "Aggressive", 2]
    for bad, needle in (([0], "Loops"), ([1, 1, "Steep"], "Curve"), ([1, 1, "Linear", 5], "Type")):
        with pytest.raises(FieldError, match=needle):
            parse_args(specs, bad)
    with pytest.raises(FieldError, match="at most 4"):
        parse_args(specs, [1, 2, 3, 4, 5])


def test_registry_lists_each_script_in_its_tabs_by_title_in_any_case() -> None:
    assert len({script.title.lower() for script in SCRIPTS}) == len(SCRIPTS)
    assert find_script("X/Y/Z PLOT", is_img2img=False) is not None
    assert find_script("loopback", is_img2img=False) is None
    assert find_script("loopback", is_img2img=True) is not None
    assert [s.title for s in scripts_for(False)] == [
        "Prompt Matrix",
        "Prompts from file or textbox",
        "X/Y/Z plot",
    ]
    for script in SCRIPTS:
        for is_img2img in (False, True):
            defaults = parse_args(script.arguments(is_img2img), [])
            assert len(defaults) == len(script.arguments(is_img2img))


def test_grid_is_the_cells_side_by_side_and_legends_add_room() -> None:
    cells = [Image.new("RGB", (64, 32), (i * 40, 0, 0)) for i in range(6)]
    grid = image_grid(cells, rows=2)
    assert grid.size == (3 * 64, 2 * 32)
    # The sixth cell is at column 3, row 2.
    assert grid.getpixel((64 * 2 + 1, 32 + 1)) == (5 * 40, 0, 0)
    labelled = annotate(
        grid,
        (64, 32),
        [[Label("Steps: 1")], [Label("Steps: 2")], [Label("a long label that wraps")]],
        [[Label("red")], [Label("blue")]],
        margin=4,
    )
    assert labelled.width > grid.width + 2 * 4 and labelled.height > grid.height + 4
    unlabelled = annotate(grid, (64, 32), [[Label("")]] * 3, [[Label("")]] * 2)
    assert unlabelled.size == grid.size
