"""docs/cli.md documents every command and every generate option."""

from __future__ import annotations

import argparse
from pathlib import Path

from impasto.cli.main import build_parser

DOC = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_has_a_section() -> None:
    sections = {
        line[len("## impasto ") :] for line in DOC.splitlines() if line.startswith("## impasto ")
    }
    assert sections == set(_commands())


def test_every_generate_option_is_documented() -> None:
    generate = _commands()["generate"]
    flags = {s for a in generate._actions for s in a.option_strings if s.startswith("--")}
    missing = {flag for flag in flags - {"--help"} if f"`{flag}" not in DOC}
    assert missing == set()
