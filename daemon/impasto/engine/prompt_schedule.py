"""AUTOMATIC1111's prompt editing (prompts whose words change between sampling steps) and its
composable prompts (``a cat AND a dog :0.5``).

``[from:to:when]`` reads ``from`` up to step ``when`` and ``to`` after it; ``[to:when]`` adds
words, ``[from::when]`` removes them; ``[a|b|c]`` alternates every step. ``when`` is a step
number, or with a decimal point a fraction of the steps. In a hires pass (``first_pass_steps``
given) a step number counts from the first pass's start and a fraction from 1.0, so
``[cat:dog:1.5]`` switches half way through the hires steps.

The grammar is A1111's (its Lark grammar in ``modules/prompt_parser.py``)::

    start: (prompt | /[][():]/+)*
    prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
    emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
    scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
    alternate: "[" prompt ("|" [prompt])+ "]"
    plain: /([^\\\\\\[\\]():|]|\\\\.)+/

read here by recursive descent: a bracket is the first of scheduled, alternate or emphasized
that it closes as, else (outside every bracket) a character of its own. A prompt the grammar
cannot read (a ``|`` outside brackets, a lone trailing backslash) is used as written for every
step, as A1111 does. Emphasis is left in the text for ``parse_prompt_attention``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_WHITESPACE = re.compile(r"\s*")
_STRAY = "[]():"


@dataclass(frozen=True)
class _Scheduled:
    before: _Prompt | None
    after: _Prompt
    when: str  # the number as written: a decimal point makes it a fraction


@dataclass(frozen=True)
class _Alternate:
    options: tuple[_Prompt, ...]


_Node = Union[str, _Scheduled, _Alternate, "_Prompt"]


@dataclass(frozen=True)
class _Prompt:
    parts: tuple[_Node, ...]


class _Unreadable(Exception):
    """Not A1111's grammar: the prompt is used as written."""


MAX_DEPTH = 64
"""Brackets nested deeper than this are not read as editing (the prompt is used as written)."""


class _Parser:
    """One prompt's reading; each position's prompt and bracket are read once (a bracket that
    is not editing is tried three ways, which would otherwise repeat for every nested one)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.depth = 0
        self._brackets: dict[int, tuple[_Node, int] | None] = {}

    def start(self) -> _Prompt:
        parts: list[_Node] = []
        at = 0
        while at < len(self.text):
            prompt, at = self.prompt(at)
            parts.append(prompt)
            if at < len(self.text):
                if self.text[at] not in _STRAY:
                    raise _Unreadable  # a "|" outside any bracket
                parts.append(self.text[at])
                at += 1
        return _Prompt(tuple(parts))

    def prompt(self, at: int) -> tuple[_Prompt, int]:
        """Elements from ``at`` up to the first character no element starts with."""
        parts: list[_Node] = []
        while at < len(self.text):
            char = self.text[at]
            if char in "([":
                found = self.bracket(at)
                if found is None:
                    break
                node, at = found
                parts.append(node)
            elif char in "]):|":
                break
            else:
                at = self.plain(at, parts)
        return _Prompt(tuple(parts)), at

    def plain(self, at: int, parts: list[_Node]) -> int:
        end = at
        while end < len(self.text) and self.text[end] not in "[]():|":
            if self.text[end] == "\\":
                if end + 1 == len(self.text):
                    raise _Unreadable  # a backslash escapes the next character; none is left
                end += 1
            end += 1
        parts.append(self.text[at:end])
        return end

    def expect(self, at: int, char: str) -> int | None:
        return at + 1 if self.text.startswith(char, at) else None

    def bracket(self, at: int) -> tuple[_Node, int] | None:
        if at in self._brackets:
            return self._brackets[at]
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Unreadable
        if self.text[at] == "(":
            found = self.round(at)
        else:
            found = self.scheduled(at) or self.alternate(at) or self.square(at)
        self.depth -= 1
        self._brackets[at] = found
        return found

    def round(self, at: int) -> tuple[_Node, int] | None:
        inner, end = self.prompt(at + 1)
        parts: list[_Node] = ["(", inner]
        if self.text.startswith(":", end):
            weight, end = self.prompt(end + 1)
            parts += [":", weight]
        closed = self.expect(end, ")")
        return None if closed is None else (_Prompt((*parts, ")")), closed)

    def square(self, at: int) -> tuple[_Node, int] | None:
        inner, end = self.prompt(at + 1)
        closed = self.expect(end, "]")
        return None if closed is None else (_Prompt(("[", inner, "]")), closed)

    def when(self, at: int) -> tuple[str, int] | None:
        """``[WHITESPACE] NUMBER [WHITESPACE] "]"`` from ``at``: the number and the end."""
        at = _WHITESPACE.match(self.text, at).end()  # type: ignore[union-attr]
        number = _NUMBER.match(self.text, at)
        if number is None:
            return None
        end = _WHITESPACE.match(self.text, number.end()).end()  # type: ignore[union-attr]
        closed = self.expect(end, "]")
        return None if closed is None else (number.group(0), closed)

    def scheduled(self, at: int) -> tuple[_Node, int] | None:
        first, end = self.prompt(at + 1)
        if not self.text.startswith(":", end):
            return None
        when = self.when(end + 1)
        if when is not None:
            return _Scheduled(None, first, when[0]), when[1]
        second, end = self.prompt(end + 1)
        if not self.text.startswith(":", end):
            return None
        when = self.when(end + 1)
        return None if when is None else (_Scheduled(first, second, when[0]), when[1])

    def alternate(self, at: int) -> tuple[_Node, int] | None:
        option, end = self.prompt(at + 1)
        options = [option]
        while self.text.startswith("|", end):
            option, end = self.prompt(end + 1)
            options.append(option)
        closed = self.expect(end, "]")
        if len(options) < 2 or closed is None:
            return None
        return _Alternate(tuple(options)), closed


def _steps_of(when: str, steps: int, first_pass_steps: int | None) -> int:
    """A1111's reading of ``when``: a step, or with a decimal point a fraction of ``steps``."""
    value = float(when)
    if "." in when:
        value = (value - (0.0 if first_pass_steps is None else 1.0)) * steps
    else:
        value -= first_pass_steps or 0
    return int(max(min(value, steps), -1.0))  # "1e999" is a number too


def _ends(node: _Node, steps: int, first_pass_steps: int | None, found: set[int]) -> None:
    if isinstance(node, _Scheduled):
        end = _steps_of(node.when, steps, first_pass_steps)
        if end >= 1:
            found.add(end)
        children: tuple[_Node, ...] = (
            (node.after,) if node.before is None else (node.before, node.after)
        )
    elif isinstance(node, _Alternate):
        found.update(range(1, steps + 1))
        children = node.options
    elif isinstance(node, _Prompt):
        children = node.parts
    else:
        return
    for child in children:
        _ends(child, steps, first_pass_steps, found)


def _text_at(node: _Node, step: int, steps: int, first_pass_steps: int | None) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, _Scheduled):
        if step <= _steps_of(node.when, steps, first_pass_steps):
            return (
                "" if node.before is None else _text_at(node.before, step, steps, first_pass_steps)
            )
        return _text_at(node.after, step, steps, first_pass_steps)
    if isinstance(node, _Alternate):
        option = node.options[(step - 1) % len(node.options)]
        return _text_at(option, step, steps, first_pass_steps)
    return "".join(_text_at(part, step, steps, first_pass_steps) for part in node.parts)


def prompt_schedule(
    prompt: str, steps: int, first_pass_steps: int | None = None
) -> list[tuple[int, str]]:
    """``(last step, text)`` pairs in step order: ``text`` is the prompt up to that step.

    Steps count from 1, as in A1111's ``get_learned_conditioning_prompt_schedules``; the last
    pair ends at ``steps``. A prompt without editing is one pair.
    """
    try:
        tree = _Parser(prompt).start()
    except _Unreadable:
        return [(steps, prompt)]
    ends = {steps}
    _ends(tree, steps, first_pass_steps, ends)
    return [(end, _text_at(tree, end, steps, first_pass_steps)) for end in sorted(ends)]


def text_at(schedule: list[tuple[int, str]], step: int) -> str:
    """The schedule's text at sampling step ``step`` (counted from 0, as A1111's sampler does:
    the first pair whose last step is at least ``step``)."""
    for end, text in schedule:
        if step <= end:
            return text
    return schedule[-1][1]


_AND = re.compile(r"\bAND\b")
_PART_WEIGHT = re.compile(r"^(\s*.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def composable_parts(prompt: str) -> list[tuple[str, float]]:
    """A1111's composable diffusion: ``prompt`` split at each ``AND`` (upper case, a word of
    its own) into parts, each with the weight a trailing ``:number`` gives it (default 1), as
    A1111's ``get_multicond_prompt_list`` reads them. A prompt without ``AND`` is one part
    of weight 1 whatever it ends with (A1111 would read ``a clock at 10:30`` as the text
    ``a clock at 10`` at weight 30)."""
    texts = _AND.split(prompt)
    if len(texts) == 1:
        return [(prompt, 1.0)]
    parts = []
    for text in texts:
        found = _PART_WEIGHT.search(text)
        if found is None:  # a part over several lines: A1111's pattern reads one
            parts.append((text, 1.0))
            continue
        words, weight = found.groups()
        parts.append((words, float(weight) if weight is not None else 1.0))
    return parts
