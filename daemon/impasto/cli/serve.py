"""`impasto serve` (flags generated from the settings) and the internal `impasto worker`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from impasto.cli.common import EXIT_USAGE, Context
from impasto.settings import Settings, field_docs
from impasto.settings_load import load_settings
from impasto.worker.processes import CONVERT_WORD, WORKER_WORD


def _defaults() -> dict[str, Any]:
    return {f.name: getattr(Settings(), f.name) for f in msgspec.structs.fields(Settings)}


def _comma_list(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def add_settings_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting (``--socket-path``, ``--no-socket``...), so none is missing."""
    docs = field_docs()
    group = parser.add_argument_group("settings (override config.toml and IMPASTO_* variables)")
    for name, default in _defaults().items():
        flag = "--" + name.replace("_", "-")
        text = f"{docs[name]} (default: {default!r})"
        if isinstance(default, bool):
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=text)
        elif isinstance(default, list):
            group.add_argument(flag, dest=name, type=_comma_list, metavar="A,B", help=text)
        else:
            kind = type(default)
            metavar = {int: "N", float: "SECONDS"}.get(kind, "VALUE")
            if name.endswith("_dir"):
                metavar = "DIR"
            elif name.endswith("_path"):
                metavar = "PATH"
            group.add_argument(flag, dest=name, type=kind, metavar=metavar, help=text)


def settings_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (flags left out are not overrides)."""
    return {name: getattr(args, name) for name in _defaults() if getattr(args, name) is not None}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `serve` and `worker`."""
    parser = commands.add_parser(
        "serve",
        help="run the daemon in the foreground",
        description="Run the daemon: the API and web UI on TCP and on a Unix socket.",
    )
    parser.add_argument("--config", type=Path, metavar="PATH", help="config.toml to read")
    add_settings_flags(parser)
    parser.set_defaults(handler=serve)
    worker = commands.add_parser(
        WORKER_WORD, help="internal: an inference worker process (started by the daemon)"
    )
    worker.set_defaults(handler=lambda args, context: run_worker([]))
    step = commands.add_parser(
        CONVERT_WORD, help="internal: an install's graph step (started by the daemon)"
    )
    step.set_defaults(handler=lambda args, context: run_convert_step(["--help"]))


def serve(args: argparse.Namespace, context: Context) -> int:
    """Load the settings with the flags on top and run the server until it stops."""
    try:
        loaded = load_settings(
            settings_overrides(args), config_path=args.config, config_origin="--config"
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Imported here: the server pulls in Litestar and granian, which client commands never need.
    from impasto.process_end import end_process
    from impasto.server import serve as run_server

    end_process(run_server(loaded))


def run_worker(argv: list[str]) -> int:
    """Run the inference worker with its own arguments."""
    from impasto.worker.main import run_worker as worker_main

    return worker_main(argv)


def run_convert_step(argv: list[str]) -> int:
    """Run one of the converter's child steps (the binary has no ``python -m``)."""
    from impasto.services.convert import main as convert_main

    return convert_main(argv)


# The daemon's child processes, started as ``impasto WORD ...`` from the binary.
CHILD_ROLES: dict[str, Callable[[list[str]], int]] = {
    WORKER_WORD: run_worker,
    CONVERT_WORD: run_convert_step,
}
