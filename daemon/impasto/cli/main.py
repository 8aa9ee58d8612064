"""Entry point of the `impasto` command: parse, dispatch, map errors to exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from impasto import __version__
from impasto.cli import config, generate, history, info, models, plugins, serve, upscale
from impasto.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_NOT_RUNNING,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Connect,
    Context,
    Parser,
    Terminated,
    add_connection_options,
    connect_from_args,
    connection_options,
)
from impasto.client import ApiError, DaemonNotRunning, ImpastoError, SettingsError


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand."""
    parser: argparse.ArgumentParser = Parser(
        prog="impasto", description="Local Stable Diffusion daemon on ONNX Runtime."
    )
    # As most commands take it; the same line as `impasto version`.
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    add_connection_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    connection = connection_options()
    serve.register(commands)
    generate.register(commands, connection)
    info.register(commands, connection)
    history.register(commands, connection)
    models.register(commands, connection)
    config.register(commands)
    plugins.register(commands, connection)
    upscale.register(commands, connection)
    return parser


def main(argv: Sequence[str] | None = None, *, connect: Connect | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 usage, 3 not running, 130
    Ctrl+C, 143 SIGTERM, 141 when whoever read the output stopped reading, as ``impasto models
    | head -1`` does)."""
    try:
        code = _run(argv, connect)
        # Written here, where a closed pipe is still ours to handle: at exit, Python would
        # print "Exception ignored ... BrokenPipeError" instead.
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_BROKEN_PIPE
    return code


def _drop_stdout() -> None:
    """Point stdout at the null device, so the interpreter's flush at exit finds no closed
    pipe (Python's documentation, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind it (a test's capture)
        pass
    finally:
        os.close(devnull)


def _run(argv: Sequence[str] | None, connect: Connect | None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    child = serve.CHILD_ROLES.get(args_list[0]) if args_list else None
    if child is not None:
        # A child process of the daemon (a worker, an install's graph step): it has its own
        # argument parser, so hand it everything after the word.
        return child(args_list[1:])
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    context = Context(connect=connect or connect_from_args)
    try:
        code: int = args.handler(args, context)
        return code
    except DaemonNotRunning as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_RUNNING
    except SettingsError as exc:  # --url, IMPASTO_URL or a setting that says where it is
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.status == 401:
            print("Pass the daemon's token with --token or IMPASTO_TOKEN.", file=sys.stderr)
        return EXIT_FAILED
    except ImpastoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # the reader of stdout went away: main() ends quietly
        raise
    except OSError as exc:  # a file the command reads or writes (an output folder, an image)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Terminated:
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line saying so, never a traceback a user must read
        print(
            f"error: impasto {args.command} failed unexpectedly ({type(exc).__name__}: {exc}); "
            "please report it with the command you ran",
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
