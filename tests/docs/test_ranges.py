"""Every range the docs and `impasto generate --help` give for a request field ("0..30") is the
range the daemon enforces (the request schema's, as GET /api/v1/limits serves it), and every
default api.md gives is the schema's."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import msgspec
import pytest

from impasto.cli.generate_args import HIRES_FLAGS, REQUEST_FIELDS
from impasto.cli.main import build_parser
from impasto.wire.limits import LIMITS
from impasto.wire.requests import GenerateRequest

DOCS = Path(__file__).resolve().parents[2] / "docs"
RANGE = re.compile(r"(?<![\w.^])(2\^63-1|-?\d+(?:\.\d+)?)\.\.(2\^63-1|-?\d+(?:\.\d+)?)(?![\w.^])")
"""``A..B``, not the ``...`` of an elided list; 2^63-1 as api.md writes the seeds' top."""


def _number(text: str) -> float:
    return float(2**63 - 1) if text == "2^63-1" else float(text)


def _ranges(text: str) -> list[tuple[float, float]]:
    return [(_number(low), _number(high)) for low, high in RANGE.findall(text)]


def _enforced(field: str) -> tuple[float, float] | None:
    limit = LIMITS.get(field)
    if limit is None or limit.minimum is None or limit.maximum is None:
        return None
    return float(limit.minimum), float(limit.maximum)


def _generate_table() -> list[tuple[str, set[str], str]]:
    """(option cell, the request fields it names, range cell) of docs/cli.md's generate table."""
    lines = (DOCS / "cli.md").read_text().splitlines()
    start = lines.index("| Option | Request field | Range |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        option, fields, range_cell = (
            cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))
        )
        names = {name.replace(".", "_") for name in re.findall(r"`([\w.]+)`", fields)}
        if "loras" in names:
            names.add("lora_weight")
        rows.append((option, names, range_cell))
    return rows


def test_the_generate_table_has_rows() -> None:
    assert len(_generate_table()) > 40


@pytest.mark.parametrize(
    ("option", "fields", "range_cell"), _generate_table(), ids=lambda value: str(value)[:30]
)
def test_each_range_in_the_cli_table_is_enforced(
    option: str, fields: set[str], range_cell: str
) -> None:
    enforced = {_enforced(field) for field in fields} - {None}
    for documented in _ranges(range_cell):
        assert documented in enforced, f"{option}: documented {documented}, enforced {enforced}"


def test_each_range_in_generate_help_is_enforced() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    checked = 0
    for action in commands.choices["generate"]._actions:
        field = REQUEST_FIELDS.get(action.dest)
        if action.dest in HIRES_FLAGS:
            field = f"hires_{HIRES_FLAGS[action.dest]}"
        for documented in _ranges(action.help or ""):
            assert field is not None, f"{action.option_strings}: a range on no request field"
            assert documented == _enforced(field), f"{action.option_strings}: {documented}"
            checked += 1
    assert checked > 15


def test_each_bracketed_range_in_api_md_is_enforced() -> None:
    """api.md writes a field's default and range as `field` [default, A..B]."""
    text = (DOCS / "api.md").read_text()
    checked = 0
    for match in re.finditer(r"`([a-z_]+)` \[([^\]]*)\]", text):
        enforced = _enforced(match.group(1))
        for documented in _ranges(match.group(2)) if enforced else []:
            assert documented == enforced, f"{match.group(0)}: enforced {enforced}"
            checked += 1
    assert checked > 10


def test_each_default_in_api_md_is_the_schema_default() -> None:
    """The request fields' paragraph writes `field` [default, ...]: a literal default there (a
    number, true, false, null or a word) is the one GenerateRequest has."""
    text = (DOCS / "api.md").read_text()
    fields = text[
        text.index("Request fields (defaults in brackets") : text.index("`tiling: true` is")
    ]
    defaults = {f.name: f.default for f in msgspec.structs.fields(GenerateRequest)}
    literals = {"true": True, "false": False, "null": None, "none": None, '""': ""}
    checked = 0
    for match in re.finditer(r"`([a-z_]+)` \[([^\]]*)\]", fields):
        name, first = match.group(1), re.split(r"[,;]| = ", match.group(2))[0].strip()
        if first in literals:
            documented: object = literals[first]
        elif re.fullmatch(r"-?\d+(\.\d+)?", first):
            documented = float(first)
        elif re.fullmatch(r"`?\"?[a-z0-9]+\"?`?", first):
            documented = first.strip('`"')
        else:  # prose: "the `default_model` setting"
            continue
        assert name in defaults, f"api.md documents a default for {name}, no such field"
        assert defaults[name] == documented, f"{match.group(0)}: the schema's is {defaults[name]!r}"
        checked += 1
    assert checked > 30
