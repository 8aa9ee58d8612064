"""A1111's prompt editing read as A1111 reads it.

The expected schedules are the doctests of AUTOMATIC1111's ``get_learned_conditioning_prompt_
schedules`` (modules/prompt_parser.py, 1.6 and later: steps 10, and hires steps 10 after a first
pass of 10), the reference this syntax is defined by.
"""

from __future__ import annotations

from typing import Any

import pytest

from impasto.engine import prompt_schedule as prompt_schedule_module
from impasto.engine.prompt_schedule import prompt_schedule, text_at

A1111_DOCTESTS = {
    "test": [(10, "test")],
    "a [b:3]": [(3, "a "), (10, "a b")],
    "a [b: 3]": [(3, "a "), (10, "a b")],
    "a [[[b]]:2]": [(2, "a "), (10, "a [[b]]")],
    "[(a:2):3]": [(3, ""), (10, "(a:2)")],
    "a [b : c : 1] d": [(1, "a b  d"), (10, "a  c  d")],
    "a[b:[c:d:2]:1]e": [(1, "abe"), (2, "ace"), (10, "ade")],
    "a [unbalanced": [(10, "a [unbalanced")],
    "a [b:.5] c": [(5, "a  c"), (10, "a b c")],
    "((a][:b:c [d:3]": [(3, "((a][:b:c "), (10, "((a][:b:c d")],
    "[a|(b:1.1)]": [(step, "a" if step % 2 else "(b:1.1)") for step in range(1, 11)],
    "[fe|]male": [(step, "female" if step % 2 else "male") for step in range(1, 11)],
    "[fe|||]male": [(step, "female" if step % 4 == 1 else "male") for step in range(1, 11)],
}


@pytest.mark.parametrize(("prompt", "schedule"), A1111_DOCTESTS.items())
def test_schedules_are_a1111s(prompt: str, schedule: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, 10) == schedule


@pytest.mark.parametrize(
    ("prompt", "schedule"),
    [
        # A fraction below 1 belongs to the first pass: the hires pass has the words after it.
        ("a [b:.5] c", [(10, "a b c")]),
        # 1.5: half way through the hires steps.
        ("a [b:1.5] c", [(5, "a  c"), (10, "a b c")]),
        # A step number counts from the first pass's start: 15 is the hires pass's 5th.
        ("a [b:15] c", [(5, "a  c"), (10, "a b c")]),
    ],
)
def test_a_hires_pass_reads_when_after_the_first_pass(
    prompt: str, schedule: list[tuple[int, str]]
) -> None:
    assert prompt_schedule(prompt, 10, first_pass_steps=10) == schedule


@pytest.mark.parametrize(
    ("prompt", "schedule"),
    [
        ("[cat:dog:0]", [(10, "dog")]),  # before the first step: the second words throughout
        ("[cat:dog:-3]", [(10, "dog")]),
        ("[cat:dog:25]", [(10, "cat")]),  # past the end: the first words throughout
        ("[cat:dog:1e999]", [(10, "cat")]),
        ("[cat::1.]", [(10, "cat")]),  # "1." is a fraction: all the steps
        ("([cat:dog:4]:1.2)", [(4, "(cat:1.2)"), (10, "(dog:1.2)")]),
        ("a \\[cat:dog:4\\]", [(10, "a \\[cat:dog:4\\]")]),  # escaped: words
        ("[cat:dog:4", [(10, "[cat:dog:4")]),  # unclosed: words
    ],
)
def test_when_and_the_brackets_around_it(prompt: str, schedule: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, 10) == schedule


@pytest.mark.parametrize(
    "prompt",
    [
        "a | b [cat:dog:3]",  # a bar outside brackets is not A1111's grammar
        "a [cat:dog:3] \\",  # nor is a backslash that escapes nothing
        "[" * 80 + "cat:dog:3" + "]" * 80,  # nested deeper than MAX_DEPTH
    ],
)
def test_what_the_grammar_cannot_read_is_used_as_written(prompt: str) -> None:
    assert prompt_schedule(prompt, 10) == [(10, prompt)]


def test_failed_brackets_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bracket is tried three ways; without the memo, n unclosed ones would take 3^n
    readings of what follows them."""
    readings = 0
    read = prompt_schedule_module._Parser.prompt

    def counted(self: Any, at: int) -> Any:
        nonlocal readings
        readings += 1
        return read(self, at)

    monkeypatch.setattr(prompt_schedule_module._Parser, "prompt", counted)
    prompt = "[a " * 10 + "(b " * 10
    assert prompt_schedule(prompt, 20) == [(20, prompt)]
    assert readings <= 4 * len(prompt)


def test_steps_count_from_zero_as_a1111s_sampler_does() -> None:
    """``[cat:dog:3]`` over 10 steps: cat at steps 0-3, dog from 4 (A1111's
    ``reconstruct_cond_batch``)."""
    schedule = prompt_schedule("[cat:dog:3]", 10)
    assert [text_at(schedule, step) for step in range(10)] == ["cat"] * 4 + ["dog"] * 6
    alternate = prompt_schedule("[cat|dog]", 4)
    assert [text_at(alternate, step) for step in range(4)] == ["cat", "cat", "dog", "cat"]
