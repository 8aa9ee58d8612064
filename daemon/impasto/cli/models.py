"""`impasto pull`, `models`, `rm`, `ps` (like ollama) and `models list|install|remove|info|ps`."""

from __future__ import annotations

import argparse
import sys
import time

from impasto.cli.common import EXIT_FAILED, EXIT_OK, Context
from impasto.client import Client

POLL = 0.25


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `pull`, `models` (with subcommands), `rm` and `ps`."""
    pull = commands.add_parser(
        "pull", parents=[connection], help="install a model (catalog name, hub repo, URL or path)"
    )
    _install_options(pull)
    models = commands.add_parser("models", parents=[connection], help="list or manage models")
    models.set_defaults(handler=list_models)
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    sub.add_parser("list", parents=[connection], help="list installed models").set_defaults(
        handler=list_models
    )
    _install_options(sub.add_parser("install", parents=[connection], help="install a model"))
    for parser in (
        sub.add_parser("remove", parents=[connection], help="delete an installed model"),
        commands.add_parser("rm", parents=[connection], help="delete an installed model"),
    ):
        parser.add_argument("id", help="model id (see `impasto models`)")
        parser.add_argument("--force", action="store_true", help="even while jobs use it")
        parser.set_defaults(handler=remove_model)
    info = sub.add_parser("info", parents=[connection], help="show one model")
    info.add_argument("id")
    info.set_defaults(handler=show_model)
    for parser in (
        sub.add_parser("ps", parents=[connection], help="models loaded in the workers"),
        commands.add_parser("ps", parents=[connection], help="models loaded in the workers"),
    ):
        parser.set_defaults(handler=show_loaded)


def _install_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="catalog name (sd-turbo), owner/repo, URL or path")
    parser.add_argument("--id", help="model id to install as (default: from the source)")
    parser.add_argument("--revision", help="hub branch, tag or commit")
    parser.add_argument("--subfolder", help="folder of the repo holding model_index.json")
    parser.add_argument("--sha256", help="expected sha256 of a downloaded file")
    parser.add_argument("--fp16", action="store_true", help="convert to fp16 (GPU providers)")
    parser.add_argument(
        "--diffusers-config",
        dest="model_config",
        metavar="REPO_OR_DIR",
        help="single-file checkpoints: the diffusers repo id or folder with its configs",
    )
    parser.add_argument("--no-wait", action="store_true", help="start it and return")
    parser.set_defaults(handler=pull)


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return str(count)


def _bar(done: int, total: int, width: int = 30) -> str:
    if not total:
        return _size(done)
    filled = int(width * min(done, total) / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {_size(done)} / {_size(total)}"


def pull(args: argparse.Namespace, context: Context) -> int:
    """Start an install and follow it with a progress line until it ends."""
    with context.connect(args) as client:
        task = client.install_model(
            args.source,
            id=args.id,
            revision=args.revision,
            subfolder=args.subfolder,
            sha256=args.sha256,
            precision="fp16" if args.fp16 else None,
            config=args.model_config,
        )
        print(f"installing {task.model_id} from {task.source} (install {task.id})")
        if args.no_wait:
            return EXIT_OK
        return _follow(client, task.id)


def _follow(client: Client, install_id: str) -> int:
    interactive = sys.stdout.isatty()
    last = ""
    try:
        while True:
            task = client.install_status(install_id)
            line = f"{task.stage:9} {_bar(task.bytes_done, task.bytes_total)}"
            if line != last:
                print(("\r" + line.ljust(70)) if interactive else line, end="", flush=True)
                if not interactive:
                    print()
                last = line
            if task.finished:
                break
            time.sleep(POLL)
    except KeyboardInterrupt:
        client.cancel_install(install_id)
        print("\ncancelled", file=sys.stderr)
        raise
    if interactive:
        print()
    if task.status == "completed":
        print(f"installed {task.model_id}")
        return EXIT_OK
    print(f"install {task.status}: {task.error or ''}".rstrip(": "), file=sys.stderr)
    return EXIT_FAILED


def list_models(args: argparse.Namespace, context: Context) -> int:
    """A table of installed models."""
    with context.connect(args) as client:
        models = client.model_details()
    rows = [("ID", "TYPE", "FAMILY", "SIZE", "SOURCE")]
    for m in models:
        source = "bundled" if m.read_only else (m.source or "folder")
        rows.append((m.id, m.type, m.family or "-", _size(m.size), m.problem or source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def show_model(args: argparse.Namespace, context: Context) -> int:
    """Every field of one model."""
    with context.connect(args) as client:
        model = client.model(args.id)
    for field in model.__struct_fields__:
        value = getattr(model, field)
        if value not in ("", None):
            print(f"{field + ':':16}{value}")
    return EXIT_OK


def remove_model(args: argparse.Namespace, context: Context) -> int:
    """Delete a model."""
    with context.connect(args) as client:
        client.remove_model(args.id, force=args.force)
    print(f"removed {args.id}")
    return EXIT_OK


def show_loaded(args: argparse.Namespace, context: Context) -> int:
    """What the workers hold, like `ollama ps`."""
    with context.connect(args) as client:
        loaded = client.loaded_models()
    print(f"{'MODEL':24}{'WORKER':12}{'SIZE':12}UNTIL")
    for item in loaded:
        until = f"{item.expires_in:.0f} s from now"
        print(f"{item.model:24}{item.worker:12}{_size(item.size):12}{until}")
    return EXIT_OK
