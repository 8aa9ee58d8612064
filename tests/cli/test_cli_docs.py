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


def _options(parser: argparse.ArgumentParser) -> set[str]:
    """Every long option of ``parser`` and of its subcommands (``models install --id``)."""
    found = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _options(sub)
        found |= {s for s in action.option_strings if s.startswith("--") and s != "--help"}
    return found


def test_every_option_of_every_client_command_is_documented() -> None:
    """serve's flags are the settings (docs/configuration.md); worker and convert-step are the
    daemon's own children."""
    missing = {
        f"{name} {flag}"
        for name, parser in _commands().items()
        if name not in ("serve", "worker", "convert-step")
        for flag in _options(parser)
        if not any(f"{before}{flag}" in DOC for before in "` [")
    }
    assert missing == set()
