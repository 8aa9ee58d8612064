"""AUTOMATIC1111 prompt emphasis: ``(word)`` x1.1, ``[word]`` /1.1, ``(word:1.3)``, ``BREAK``."""

from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = "BREAK"
"""A fragment with this text and weight -1 ends the current 75-token chunk early."""

_ATTENTION = re.compile(
    r"""
    \\\(|\\\)|\\\[|\\\]|\\\\|\\|   # escapes: \( \) \[ \] \\ and a lone backslash
    \(|\[|                          # openers
    :\s*([+-]?[.\d]+)\s*\)|         # (text:1.3) closer with an explicit weight
    \)|\]|                          # closers
    [^\\()\[\]:]+|:                 # plain text, or a colon that is not a weight
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:  # "(a:1.2.3)" is text, not a weight
        return False
    return True


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into (fragment, weight) runs; unclosed brackets still apply to the end."""
    parts: list[list[str | float]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for part in parts[start:]:
            part[1] = float(part[1]) * multiplier

    for match in _ATTENTION.finditer(text):
        token, weight = match.group(0), match.group(1)
        if token.startswith("\\"):
            parts.append([token[1:] if len(token) > 1 else token, 1.0])
        elif token == "(":
            round_open.append(len(parts))
        elif token == "[":
            square_open.append(len(parts))
        elif weight is not None and round_open and _is_number(weight):
            multiply_from(round_open.pop(), float(weight))
        elif token == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, piece in enumerate(_BREAK.split(token)):
                if i > 0:
                    parts.append([BREAK, -1.0])
                parts.append([piece, 1.0])

    for start in round_open:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)

    merged: list[tuple[str, float]] = []
    for fragment, weight in parts:
        fragment, weight = str(fragment), float(weight)
        if merged and merged[-1][1] == weight and weight != -1.0:
            merged[-1] = (merged[-1][0] + fragment, weight)
        else:
            merged.append((fragment, weight))
    return merged or [("", 1.0)]
