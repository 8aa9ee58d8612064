"""What every command shares: exit codes, the connection options, the client factory."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import msgspec

from impasto.client import ApiError, Client, FieldError
from impasto.client.core import not_finite

EXIT_OK = 0
EXIT_FAILED = 1  # the daemon rejected the request, or the job failed
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143  # 128 + SIGTERM
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for `yes | head -1`'s yes
USAGE_LINES = 4  # a usage longer than this is summed up in a usage error
STDOUT = Path("-")
"""``-o -``: the PNG goes to standard output (compared by identity: ``-o ./-`` is a file)."""

Connect = Callable[[argparse.Namespace], Client]


def connect_from_args(args: argparse.Namespace) -> Client:
    """A client for the daemon named by --url/--unix-socket/--token, else by discovery."""
    return Client(
        base_url=getattr(args, "url", None),
        socket=getattr(args, "unix_socket", None),
        token=getattr(args, "token", None),
    )


@dataclass(frozen=True)
class Context:
    """Passed to every command: how to reach the daemon (tests swap in a fake)."""

    connect: Connect = connect_from_args


def add_connection_options(parser: argparse.ArgumentParser, default: object = None) -> None:
    """The options that say where the daemon is (``impasto --url X status`` and ``impasto
    status --url X`` alike: a command's own copy defaults to SUPPRESS, keeping the first)."""
    group = parser.add_argument_group(
        "connection (default: IMPASTO_URL, else the running daemon's discovery file)"
    )
    group.add_argument(
        "--url", default=default, help="daemon URL, e.g. http://127.0.0.1:8080 (or HOST:PORT)"
    )
    group.add_argument("--unix-socket", default=default, metavar="PATH", help="daemon Unix socket")
    group.add_argument(
        "--token", default=default, help="API token (default: IMPASTO_TOKEN or the discovery file)"
    )


def connection_options() -> argparse.ArgumentParser:
    """A parent parser with the connection options, for each command that talks to the daemon."""
    parent = argparse.ArgumentParser(add_help=False)
    add_connection_options(parent, default=argparse.SUPPRESS)
    return parent


class Parser(argparse.ArgumentParser):
    """argparse's parser whose usage error is short: ``generate``'s full usage is forty lines
    of flags above the one line that says what was wrong, so a long one is summed up."""

    def error(self, message: str) -> NoReturn:
        usage, more = self.format_usage(), ""
        if usage.count("\n") > USAGE_LINES:
            names = [a.metavar or a.dest for a in self._actions if not a.option_strings]
            usage = f"usage: {' '.join([self.prog, '[options]', *map(str, names)])}\n"
            more = f"`{self.prog} --help` lists the options.\n"
        self.exit(EXIT_USAGE, f"{usage}{self.prog}: error: {message}\n{more}")


def ruled(parse: Callable[[str], Any], rule: str) -> Callable[[str], Any]:
    """``parse`` whose refusal of a value says what the option takes (a request field's rule,
    "must be an integer between 1 and 150"), not argparse's "invalid int value"."""

    def parse_ruled(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, argparse.ArgumentTypeError):
            raise argparse.ArgumentTypeError(f"{text!r}: {rule}") from None

    parse_ruled.__wrapped__ = parse  # type: ignore[attr-defined]
    return parse_ruled


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout 60 impasto generate ...``, a service manager) taken as Ctrl+C is, so a
    running ``generate`` cancels its job rather than leaving it to run for no one."""


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises Terminated where the command is; the handler before is restored."""

    def terminate(_signum: int, _frame: object) -> None:
        raise Terminated

    try:
        before = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread (main() run from a thread): nothing to catch
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def add_json_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--json``: print ``what`` as the API answers it, for scripts, instead of the table."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def print_json(value: object) -> None:
    """One line of JSON on stdout (msgspec Structs, lists and dicts of them)."""
    print(msgspec.json.encode(value).decode())


def finite_float(text: str, what: str = "") -> float:
    """An option's number (``what`` names it in the message, default the text itself): NaN and
    infinity are usage errors, as JSON has no form for them (an encoder would send ``null``,
    which the daemon reads as "the default")."""
    what = what or repr(text)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{what} must be a finite number")
    return value


def plugin_option(text: str) -> tuple[str, Any]:
    """``NAME`` (true) or ``NAME=VALUE`` (JSON, else the text) as one entry of ``plugins``;
    a number JSON has no form for (NaN, infinity, 1e999; "nan" as text too) is a usage error,
    as for every other option."""
    name, equals, value = text.partition("=")
    name = name.strip()
    if not name:
        raise argparse.ArgumentTypeError(f"{text!r}: a plugin's name comes before '='")
    if not equals:
        return name, True
    try:
        parsed: Any = json.loads(value)  # reads NaN, Infinity and 1e999 as floats
    except ValueError:
        parsed = value
    if not_finite(parsed) or not _finite_text(value):
        raise argparse.ArgumentTypeError(f"{text!r}: the value after '=' must be a finite number")
    return name, parsed


def _finite_text(text: str) -> bool:
    """False for text that reads as a number with no JSON form ("nan", "-inf")."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return True


def output_path(text: str) -> Path:
    """An ``-o`` value: STDOUT itself for ``-``, else the path."""
    return STDOUT if text == "-" else Path(text)


def folder_path(text: str) -> Path:
    """A folder option's value; ``-`` (standard output, one picture) cannot hold several."""
    if text == "-":
        raise argparse.ArgumentTypeError(
            "saves into a folder; - (standard output) holds one picture: give a folder, or "
            "read the images' URLs from --json"
        )
    return Path(text)


def stdout_refusal(option: str) -> str | None:
    """Why ``option -`` cannot write a picture to standard output now, or None when it can: a
    terminal shows a PNG's bytes as garbage (curl refuses too)."""
    try:
        terminal = sys.stdout.isatty()
    except (AttributeError, ValueError):
        terminal = False
    if terminal:
        return (
            f"{option} - writes the PNG to standard output, which is a terminal here: "
            "redirect it (> picture.png) or pipe it (| display)"
        )
    return None


def write_stdout(data: bytes) -> None:
    """Write a picture's bytes to standard output (``-o -``)."""
    sys.stdout.flush()  # anything printed before stays in front of it
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_new(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, or, when something is there already, to the first free
    ``STEM-1.SUFFIX``, ``STEM-2.SUFFIX``, ...; never replaces a file. Returns the path written.
    The exclusive create ("x") makes two commands writing at once take different names."""
    candidate, number = path, 0
    while True:
        try:
            file = candidate.open("xb")
        except FileExistsError:
            number += 1
            candidate = path.with_name(f"{path.stem}-{number}{path.suffix}")
            continue
        try:
            with file:
                file.write(data)
        except OSError:  # a full disk: no half-written picture left behind under the name
            candidate.unlink(missing_ok=True)
            raise
        return candidate


def naming(exc: ApiError, field: str, name: str) -> ApiError:
    """``exc`` with the request field ``field`` called ``name``: what the user wrote (an
    option and its file) rather than a body field they never saw (an upload's ``file``)."""
    errors = [FieldError(name, e.message) if e.field == field else e for e in exc.errors]
    detail = exc.detail
    if detail.startswith(f"{field}: "):  # the daemon's detail repeats its first field error
        detail = f"{name}: {detail.removeprefix(f'{field}: ')}"
    return ApiError(exc.status, detail, errors, exc.retry_after)


def make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders this made, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty(made: list[Path]) -> None:
    """Remove the folders ``make_folder`` made, deepest first, up to the first not empty."""
    for path in made:
        try:
            path.rmdir()
        except OSError:
            break
