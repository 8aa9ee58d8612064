"""`impasto history`: past jobs, newest first, filtered as GET /history filters them."""

from __future__ import annotations

import argparse
import itertools
import sys
import textwrap
from datetime import datetime

import msgspec

from impasto.cli.common import EXIT_OK, Context, folder_path, naming
from impasto.cli.generate import save_images
from impasto.cli.info import clipped_prompt, format_table, size_text
from impasto.client import ApiError, JobStatus

PAGE = 50  # jobs asked for at a time


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `history`."""
    history = commands.add_parser(
        "history", parents=[connection], help="past jobs, newest first, with their images"
    )
    history.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="only jobs in this state: queued, processing, completed, failed, cancelled "
        "(repeatable, or comma-separated)",
    )
    history.add_argument("--model", help="only jobs of this model id")
    history.add_argument("--search", metavar="TEXT", help="only jobs whose prompt holds TEXT")
    history.add_argument(
        "-n", "--limit", type=_positive, default=20, help="how many jobs (default 20)"
    )
    shown = history.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print the jobs as JSON")
    shown.add_argument(
        "--save",
        type=folder_path,
        metavar="DIR",
        help="download the images of the completed jobs into DIR (JOB-INDEX.png) and print "
        "their paths",
    )
    history.set_defaults(handler=show_history)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer of 1 or more")
    return value


def show_history(args: argparse.Namespace, context: Context) -> int:
    """Print the newest ``--limit`` jobs that pass the filters."""
    status = ",".join(args.status) if args.status else None
    with context.connect(args) as client:
        pages = client.history(
            status=status, model=args.model, q=args.search, limit=min(args.limit, PAGE)
        )
        try:
            found = list(
                itertools.islice((job for page in pages for job in page.items), args.limit)
            )
        except ApiError as exc:  # the query's "q" is what --search wrote
            raise naming(exc, "q", "q (--search)") from exc
        if args.save is not None:
            args.save.mkdir(parents=True, exist_ok=True)
            for job in found:
                save_images(client, job, args.save)
            return EXIT_OK
    if args.json:
        sys.stdout.write(msgspec.json.encode(found).decode() + "\n")
        return EXIT_OK
    if not found:
        print("No jobs match." if status or args.model or args.search else "No jobs yet.")
        return EXIT_OK
    header = ["ID", "STATUS", "CREATED", "MODEL", "SIZE", "IMAGES", "PROMPT"]
    header_line, *lines = format_table(header, [_row(job) for job in found])
    print(header_line)
    for job, line in zip(found, lines, strict=True):
        print(line)
        if job.error:  # why it failed (or was cancelled by the daemon), under its row
            print(textwrap.indent(job.error, "  "))
    return EXIT_OK


def _row(job: JobStatus) -> list[str]:
    return [
        job.id,
        job.status,
        _local(job.created_at),
        str(job.request.get("model") or ""),
        size_text(job),
        str(len(job.results)),
        clipped_prompt(job),
    ]


def _local(moment: datetime | None) -> str:
    """A time as this machine's clock reads it, to the minute."""
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else ""
