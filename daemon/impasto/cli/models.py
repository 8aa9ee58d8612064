"""`impasto pull`, `models`, `rm`, `ps` (like ollama) and `models list|install|remove|info|ps`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from impasto.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    add_json_option,
    finite_float,
    print_json,
    terminate_as_interrupt,
)
from impasto.client import ApiError, Client
from impasto.client.models import MODEL_TYPES

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
    listing = sub.add_parser("list", parents=[connection], help="list installed models")
    listing.set_defaults(handler=list_models)
    for parser in (models, listing):
        parser.add_argument(
            "--type",
            dest="types",
            action="append",
            choices=MODEL_TYPES,
            help="only models of this type (repeatable)",
        )
        add_json_option(parser, "the models as GET /api/v1/models answers them")
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
    add_json_option(info, "the model as GET /api/v1/models/ID answers it")
    info.set_defaults(handler=show_model)
    for parser in (
        sub.add_parser("ps", parents=[connection], help="models loaded in the workers"),
        commands.add_parser("ps", parents=[connection], help="models loaded in the workers"),
    ):
        add_json_option(parser, "what the workers hold as GET /api/v1/models/loaded answers it")
        parser.set_defaults(handler=show_loaded)
    load = sub.add_parser("load", parents=[connection], help="load a model into the workers")
    load.add_argument("id", help="model id (see `impasto models`)")
    load.add_argument(
        "--keep-alive",
        type=finite_float,
        metavar="SECONDS",
        help="hold it this long once idle (default: the daemon's keep_alive; 0: drop it once idle)",
    )
    load.set_defaults(handler=load_model)
    unload = sub.add_parser("unload", parents=[connection], help="drop a model from the workers")
    unload.add_argument("id", help="model id (see `impasto ps`)")
    unload.set_defaults(handler=load_model, keep_alive=None)


def _install_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source", nargs="?", help="catalog name (sd-turbo), owner/repo, URL or path"
    )
    parser.add_argument(
        "--list", action="store_true", help="show the catalog and the build this machine gets"
    )
    add_json_option(parser, "--list's catalog as GET /api/v1/models/catalog answers it")
    parser.add_argument(
        "--variant", help="a catalog model's build: cuda, directml, coreml, portable, ..."
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="install even when this machine's execution provider cannot run it",
    )
    parser.add_argument("--id", help="model id to install as (default: from the source)")
    parser.add_argument("--revision", help="hub branch, tag or commit")
    parser.add_argument("--subfolder", help="folder of the repo holding model_index.json")
    parser.add_argument("--sha256", help="expected sha256 of the file (a URL or a local file)")
    parser.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        help="fp16: convert to fp16 (GPU providers); int8: quantise the UNet (CPU, smaller, "
        "faster, a little less exact; see docs/models.md); default: fp16 on a GPU, else fp32",
    )
    parser.add_argument("--fp16", action="store_true", help="the same as --precision fp16")
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
    if not total:  # a stage that counts no bytes (a local copy's optimize) shows none
        return _size(done) if done else ""
    filled = int(width * min(done, total) / total)
    return f"[{'#' * filled}{'.' * (width - filled)}] {_size(done)} / {_size(total)}"


def pull(args: argparse.Namespace, context: Context) -> int:
    """Start an install and follow it with a progress line until it ends."""
    if args.list:
        return show_catalog(args, context)
    if not args.source:
        print("impasto pull: name a model to install, or use --list", file=sys.stderr)
        return EXIT_USAGE
    with context.connect(args) as client:
        task = client.install_model(
            local_source(args.source),
            variant=args.variant,
            force=args.force or None,
            id=args.id,
            revision=args.revision,
            subfolder=args.subfolder,
            sha256=args.sha256,
            precision="fp16" if args.fp16 else args.precision,
            config=args.model_config and local_source(args.model_config, folder_only=True),
        )
        print(f"installing {task.model_id} from {task.source} (install {task.id})")
        if task.note:
            print(task.note)
        if args.no_wait:
            return EXIT_OK
        with terminate_as_interrupt():
            return _follow(client, task.id)


def local_source(text: str, *, folder_only: bool = False) -> str:
    """A relative path as this command's folder finds it, made absolute: the daemon runs in
    another folder and would look there (``pull ./model.safetensors``). ``./x`` always; a path
    that is here and could not be a catalog name (it has a ``/`` or is a file) too, unless
    ``folder_only`` (--diffusers-config, whose ``owner/name`` is a repo id unless it starts with
    ``.``). Anything else (a URL, ``~``, a name, a repo id) goes as written."""
    if Path(text).is_absolute() or "://" in text or text.startswith("hf:"):
        return text
    path = Path(text)
    here = not folder_only and path.exists() and ("/" in text or os.sep in text or path.is_file())
    if text.startswith(".") or here:
        return os.path.abspath(text)
    return text


def _follow(client: Client, install_id: str) -> int:
    interactive = sys.stdout.isatty()
    last = ""
    try:
        while True:
            task = client.install_status(install_id)
            line = f"{task.stage:9} {_bar(task.bytes_done, task.bytes_total)}".rstrip()
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
        if task.warning:
            print(f"warning: {task.warning}", file=sys.stderr)
        return EXIT_OK
    print(f"install {task.status}: {task.error or ''}".rstrip(": "), file=sys.stderr)
    return EXIT_FAILED


def list_models(args: argparse.Namespace, context: Context) -> int:
    """A table of installed models."""
    with context.connect(args) as client:
        models = client.model_details(getattr(args, "types", None) or ())
    if args.json:
        print_json(models)
        return EXIT_OK
    rows = [("ID", "TYPE", "FAMILY", "SIZE", "SOURCE")]
    for m in models:
        source = "bundled" if m.read_only else (m.source or "folder")
        rows.append((m.id, m.type, m.family or "-", _size(m.size), m.problem or source))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _present(record: msgspec.Struct, skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    fields = (
        (name, getattr(record, name)) for name in record.__struct_fields__ if name not in skip
    )
    return [(name, value) for name, value in fields if value not in ("", None)]


def describe(record: msgspec.Struct, indent: str = "", skip: tuple[str, ...] = ()) -> list[str]:
    """``name: value`` lines, values aligned; nested records follow as indented blocks."""
    rows = _present(record, skip)
    width = max((len(name) for name, _ in rows), default=0) + 2
    lines, blocks = [], []
    for name, value in rows:
        if isinstance(value, msgspec.Struct):
            blocks += [f"{indent}{name}:", *describe(value, indent + "  ")]
            continue
        if name == "size" and isinstance(value, int):
            value = _size(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        lines.append(f"{indent}{name + ':':{width}}{value}")
    return lines + blocks


def show_catalog(args: argparse.Namespace, context: Context) -> int:
    """The catalog: sizes, licenses, and which build this machine would get."""
    with context.connect(args) as client:
        entries = client.model_catalog()
    if args.json:
        print_json(entries)
        return EXIT_OK
    for entry in entries:
        print(f"{entry.name}  ({entry.family}, license {entry.license or 'unknown'})")
        if entry.description:
            print(f"  {entry.description}")
        for variant in entry.variants:
            mark = "*" if variant.key == entry.chosen else " "
            how = ", converted here" if variant.convert else ""
            place = variant.repo + (f"/{variant.subfolder}" if variant.subfolder else "")
            # A catalog entry that names only a repo says neither (0 and ""): not "0 B ?".
            size = _size(variant.size) if variant.size else "size unknown"
            print(f"  {mark} {variant.key:9} {size:>12}  {variant.precision:5} {place}{how}")
        if entry.no_portable:
            print(f"    no portable build: {entry.no_portable}")
        print(f"  this machine: {entry.summary}")
    return EXIT_OK


def show_model(args: argparse.Namespace, context: Context) -> int:
    """Every field of one model, and where it runs."""
    with context.connect(args) as client:
        model = client.model(args.id)
    if args.json:
        print_json(model)
        return EXIT_OK
    capability = ("runs_on", "runs_here", "not_here", "runs_note")
    lines = describe(model, skip=capability)
    names = [line.index(":") for line in lines if ":" in line and not line.startswith(" ")]
    width = max([*names, len("not here")]) + 2
    runs: list[str] = []
    if model.runs_on or model.runs_here is not None:
        runs_on = ", ".join(model.runs_on) or "no provider of this onnxruntime"
        runs.append(f"{'runs on:':{width}}{runs_on}")
    if model.runs_here is False:
        runs.append(f"{'not here:':{width}}{model.not_here}")
    elif model.runs_note:
        runs.append(f"{'note:':{width}}{model.runs_note}")
    # Nested blocks (``defaults:``) stay last.
    blocks = next((i for i, line in enumerate(lines) if line.endswith(":")), len(lines))
    lines[blocks:blocks] = runs
    print("\n".join(lines))
    return EXIT_OK


def remove_model(args: argparse.Namespace, context: Context) -> int:
    """Delete a model."""
    with context.connect(args) as client:
        try:
            client.remove_model(args.id, force=args.force)
        except ApiError as exc:
            # The daemon names the API's query parameter (force=true); here it is a flag.
            if exc.status != 409 or "force=true" not in exc.detail:
                raise
            detail = exc.detail.replace("force=true", "--force")
            print(f"error: {detail} (HTTP {exc.status})", file=sys.stderr)
            return EXIT_FAILED
    print(f"removed {args.id}")
    return EXIT_OK


def load_model(args: argparse.Namespace, context: Context) -> int:
    """`models load` / `models unload`: tell the workers, as `ollama run` / `ollama stop` do."""
    unload = args.models_command == "unload"
    with context.connect(args) as client:
        workers = client.load_model(args.id, unload=unload, keep_alive=args.keep_alive)
    action = "unloading" if unload else "loaded"
    print(f"{action} {args.id} in {workers} worker(s); `impasto ps` shows what they hold")
    return EXIT_OK


def show_loaded(args: argparse.Namespace, context: Context) -> int:
    """What the workers hold, like `ollama ps`."""
    with context.connect(args) as client:
        loaded = client.loaded_models()
    if args.json:
        print_json(loaded)
        return EXIT_OK
    # Cluster workers are named by node (10.0.0.7/3f2a1c/0): the column fits the longest.
    width = max([12, *(len(item.worker) + 2 for item in loaded)])
    print(f"{'MODEL':24}{'WORKER':{width}}{'SIZE':12}UNTIL")
    for item in loaded:
        until = f"{item.expires_in:.0f} s from now"
        print(f"{item.model:24}{item.worker:{width}}{_size(item.size):12}{until}")
    return EXIT_OK
