"""Every `impasto` command line in the docs' code blocks is one the CLI accepts: no flag that
does not exist, no subcommand that was renamed, no value of the wrong kind."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from impasto.cli.main import build_parser
from impasto.cli.serve import CHILD_ROLES

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```[a-z]*\n(.*?)```", re.S)
COMMAND = re.compile(r"^(?:\$ )?(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?(impasto (?:[a-z-]+).*)$")


def _examples() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        lines = [line for block in BLOCK.findall(text) for line in block.splitlines()]
        # Indented blocks, as plugins.md writes its commands.
        lines += [line[4:] for line in text.splitlines() if line.startswith("    impasto ")]
        for line in lines:
            match = COMMAND.match(line.strip())
            if match:
                found.append((doc.name, match.group(1)))
    return found


EXAMPLES = _examples()


def _argv(command: str) -> list[str]:
    """The arguments a shell would pass: no comment, no pipe, a `$(...)` as one word, a
    synopsis's optional ``[--flag]`` as the flag."""
    command = re.sub(r"\s+#.*$", "", command).split(" | ")[0]
    command = re.sub(r'"\$\([^)]*\)"', "WORD", command)
    return shlex.split(command.replace("[", "").replace("]", ""))[1:]


def test_the_docs_have_command_examples() -> None:
    assert len(EXAMPLES) > 40
    assert {doc for doc, _ in EXAMPLES} >= {"README.md", "cli.md", "models.md", "plugins.md"}


@pytest.mark.parametrize(("doc", "command"), EXAMPLES, ids=[c for _, c in EXAMPLES])
def test_each_documented_command_parses(doc: str, command: str) -> None:
    argv = _argv(command)
    if argv[0] in CHILD_ROLES:  # started by the daemon, with a parser of their own
        return
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        assert not exc.code, f"{doc}: `{command}`: {err.getvalue().strip()}"
