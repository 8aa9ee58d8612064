"""How an X/Y/Z plot axis's values are read, as AUTOMATIC1111 reads them: the dropdown list,
CSV text or one value per line, and number ranges."""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from impasto.services.errors import FieldError
from impasto.services.scripts.base import FIELD
from impasto.services.scripts.xyz_axes import Axis, ValueKind

# Ranges as A1111 reads them: "1-5" (step 1), "1-9 (+2)" (step), "1-10 [4]" (count).
MAX_VALUES = 100


def _range(unsigned: str) -> re.Pattern[str]:
    number = rf"[+-]?\s*{unsigned}"
    return re.compile(
        rf"\s*(?P<start>{number})\s*-\s*(?P<end>{number})"
        rf"(?:\s*\((?P<step>[+-]{unsigned})\s*\)|\s*\[(?P<count>\d+(?:\.\d*)?)\s*\])?\s*"
    )


_INT_RANGE, _FLOAT_RANGE = _range(r"\d+"), _range(r"\d+(?:\.\d*)?")


def _number(text: str, cast: Callable[[str], Any]) -> Any:
    return cast(text.replace(" ", ""))


def _expand(values: list[str], kind: ValueKind, which: str) -> list[Any]:
    out: list[Any] = []
    for value in values:
        match = (_INT_RANGE if kind == "int" else _FLOAT_RANGE).fullmatch(value)
        if match is None:
            out.append(value)
            continue
        cast = int if kind == "int" else float
        start, end = _number(match["start"], cast), _number(match["end"], cast)
        if match["count"] is not None:
            count = int(float(match["count"]))
            _check_count(count, which, value)
            out += [cast(point) for point in np.linspace(start, end, num=count).tolist()]
            continue
        step = _number(match["step"], cast) if match["step"] else cast(1)
        if not step:
            out.append(start)
            continue
        # Counted before expanding, so "1-1000000000" is refused without building it.
        _check_count(math.floor((end - start) / step) + 1, which, value)
        if kind == "int":
            out += list(range(int(start), int(end) + 1, int(step)))
        else:
            out += np.arange(start, end + step, step).tolist()
    return out


def _check_count(count: int, which: str, text: str) -> None:
    if count > MAX_VALUES:
        raise FieldError(
            FIELD, f"{which} range {text.strip()!r} has {count} values; at most {MAX_VALUES}"
        )


def axis_values(
    axis: Axis, text: str, dropdown: list[str], *, csv_mode: bool, raw_mode: bool, which: str
) -> list[Any]:
    """An axis's values: the dropdown list for axes with choices, else the text as A1111 reads
    it (CSV, or one value per line in raw mode; ranges for numbers).

    A client that fills the text instead of the dropdown of an axis with choices is read from
    the text: A1111 would silently ignore it.
    """
    if axis.label == "Nothing":
        return [0]
    if axis.choices is not None and not csv_mode and dropdown:
        items = [str(item).strip() for item in dropdown]
    elif raw_mode and "\n" in text.strip():
        items = text.strip().split("\n")
    else:
        items = [
            item.strip()
            for item in itertools.chain.from_iterable(
                csv.reader(io.StringIO(text), skipinitialspace=True)
            )
        ]
    items = [item for item in items if item != ""] if axis.kind != "str" else items
    if not items or items == [""]:
        raise FieldError(FIELD, f"{which} values are empty; give values for {axis.label}")
    values: list[Any]
    if axis.kind == "permutations":
        values = [list(order) for order in itertools.permutations(items)]
    elif axis.kind in ("int", "float"):
        cast = int if axis.kind == "int" else float
        try:
            values = [
                cast(value) if isinstance(value, str) else value
                for value in _expand(items, axis.kind, which)
            ]
        except ValueError as exc:
            raise FieldError(FIELD, f"{which} values for {axis.label}: {exc}") from None
    else:
        values = items
    if not values:
        raise FieldError(FIELD, f"{which} values give no value for {axis.label}")
    if len(values) > MAX_VALUES:
        raise FieldError(FIELD, f"{which} has {len(values)} values; at most {MAX_VALUES}")
    return values
