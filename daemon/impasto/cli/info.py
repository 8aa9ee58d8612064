"""`impasto status`, `queue` (list, pause, resume), `cancel`, `version` and `tray`."""

from __future__ import annotations

import argparse
import importlib
import sys

from impasto import __version__
from impasto.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    add_json_option,
    print_json,
)
from impasto.client import ApiError, JobStatus, SystemInfo


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `status`, `queue`, `cancel`, `version` and `tray`."""
    status = commands.add_parser(
        "status", parents=[connection], help="is the daemon running, on what, and how busy"
    )
    add_json_option(status, "GET /api/v1/health and GET /api/v1/system's answers")
    status.set_defaults(handler=show_status)
    queue = commands.add_parser(
        "queue", parents=[connection], help="list running and queued jobs, or pause or resume"
    )
    queue.add_argument(
        "action",
        nargs="?",
        choices=["pause", "resume"],
        help="pause: start no new jobs (the running one finishes); resume: start them again",
    )
    add_json_option(queue, "the queue as GET /api/v1/queue answers it")
    queue.set_defaults(handler=show_queue)
    cancel = commands.add_parser(
        "cancel", parents=[connection], help="cancel jobs: by id, every queued one, or all"
    )
    which = cancel.add_mutually_exclusive_group()
    which.add_argument("ids", nargs="*", default=[], metavar="ID", help="job ids (`impasto queue`)")
    which.add_argument("--queued", action="store_true", help="cancel every queued job")
    which.add_argument(
        "--all", action="store_true", help="cancel every queued job and the running ones"
    )
    cancel.set_defaults(handler=cancel_jobs)
    version = commands.add_parser("version", help="print the version")
    version.set_defaults(handler=show_version)
    tray = commands.add_parser("tray", help="run the tray icon (needs impasto[tray])")
    tray.set_defaults(handler=run_tray)


def _gib(size: int) -> str:
    return f"{size / 1024**3:.1f} GiB"


def describe_system(info: SystemInfo) -> list[str]:
    """The lines of `impasto status` below the first."""
    provider = info.provider
    lines = [f"Provider: {provider.name or 'none yet (no worker has started)'}"]
    by_reason: dict[str, list[str]] = {}
    for rejected in provider.rejected:
        by_reason.setdefault(rejected.reason, []).append(rejected.name)
    for reason, names in by_reason.items():
        lines.append(f"  not used ({reason}): {', '.join(names)}")
    if info.memory.total:
        lines.append(f"Memory: {_gib(info.memory.available)} free of {_gib(info.memory.total)}")
    for gpu in info.gpus:
        used, total = _gib(gpu.memory_used), _gib(gpu.memory_total)
        lines.append(f"GPU {gpu.index}: {gpu.name}, {used} of {total} used")
    queue = info.queue
    paused = ", paused" if queue.paused else ""
    lines.append(f"Queue: {queue.processing} processing, {queue.queued} queued{paused}")
    loaded = ", ".join(m.model for m in info.loaded_models) or "none"
    lines.append(f"Loaded models: {loaded}")
    for worker in info.workers:
        doing = f" on job {worker.job_id}" if worker.job_id else ""
        lines.append(f"{worker.id.capitalize()} (pid {worker.pid}): {worker.state}{doing}")
    return lines


def show_status(args: argparse.Namespace, context: Context) -> int:
    """Daemon health, provider, hardware and queue counts."""
    with context.connect(args) as client:
        health = client.health()
        info = client.system()
        if args.json:
            print_json({"health": health, "system": info})
            return EXIT_OK if health.status == "ok" else EXIT_FAILED
        print(f"Impasto {health.version} is running at {client.where}")
    for line in describe_system(info):
        print(line)
    if health.status != "ok":
        print(f"Problem: {health.problem or health.status}")
        return EXIT_FAILED
    return EXIT_OK


def _row(item: JobStatus) -> list[str]:
    if item.status == "processing":
        state = f"processing {item.progress * 100:.0f}%"
    else:
        state = f"queued #{item.position}" if item.position is not None else item.status
    model = str(item.request.get("model") or "")
    return [item.id, state, str(item.priority), model, size_text(item), clipped_prompt(item)]


PROMPT_WIDTH = 40  # characters of a prompt a table shows


def size_text(job: JobStatus) -> str:
    """A job's requested size as WxH."""
    return f"{job.request.get('width', '?')}x{job.request.get('height', '?')}"


def clipped_prompt(job: JobStatus) -> str:
    """A job's prompt on one line (a newline or tab in it would break the table's rows for
    `head` and `awk`), cut to PROMPT_WIDTH characters with an ellipsis where it was cut."""
    prompt = " ".join(str(job.request.get("prompt", "")).split())
    return prompt if len(prompt) <= PROMPT_WIDTH else prompt[: PROMPT_WIDTH - 1] + "…"


def format_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]


def show_queue(args: argparse.Namespace, context: Context) -> int:
    """The running and queued jobs, in run order; or pause or resume the queue."""
    with context.connect(args) as client:
        if args.action == "pause":
            client.pause()
            print("Paused: the running job finishes, queued jobs wait for `impasto queue resume`.")
            return EXIT_OK
        if args.action == "resume":
            client.resume()
            print("Resumed: queued jobs start again.")
            return EXIT_OK
        state = client.queue()
    if args.json:
        print_json(state)
        return EXIT_OK
    if state.paused:
        print("The queue is paused: queued jobs wait until `impasto queue resume`.")
    if not state.items:
        print("No jobs are running or queued.")
        return EXIT_OK
    header = ["ID", "STATUS", "PRIORITY", "MODEL", "SIZE", "PROMPT"]
    for line in format_table(header, [_row(item) for item in state.items]):
        print(line)
    more = state.total - len(state.items)
    if more > 0:  # the daemon answers the first page (100 jobs): the rest are counted, not lost
        print(f"... and {more} more queued after these.")
    return EXIT_OK


def cancel_jobs(args: argparse.Namespace, context: Context) -> int:
    """Cancel jobs by id, or every queued one (``--queued``), or everything (``--all``); a
    running job stops before its next sampler step or plugin call."""
    if not (args.ids or args.queued or args.all):
        print("error: name the jobs to cancel: ID ..., --queued or --all", file=sys.stderr)
        return EXIT_USAGE
    with context.connect(args) as client:
        if not args.ids:
            count = len(client.clear_queue(running=args.all))
            what = ("" if args.all else "queued ") + ("job" if count == 1 else "jobs")
            print(f"Cancelled {count} {what}." if count else f"No {what} to cancel.")
            return EXIT_OK
        code = EXIT_OK
        for job_id in args.ids:
            try:
                result = client.cancel(job_id)
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
                # One unknown or finished job does not stop the others.
                print(f"error: {exc}", file=sys.stderr)
                code = EXIT_FAILED
                continue
            if result.status == "cancelled":
                print(f"Cancelled {result.id}.")
            else:
                print(
                    f"Cancelling {result.id}: it stops before its next sampler step or plugin "
                    "call, and ends cancelled (a worker that does not stop is restarted)."
                )
    return code


def show_version(args: argparse.Namespace, context: Context) -> int:
    """Print this installation's version."""
    print(f"impasto {__version__}")
    return EXIT_OK


def run_tray(args: argparse.Namespace, context: Context) -> int:
    """Start the tray icon, which runs and supervises the daemon."""
    try:
        tray = importlib.import_module("impasto_tray")
    except ImportError:
        print(
            "The tray icon is not installed: install it with `pip install 'impasto[tray]'`.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    code = tray.main()
    return int(code or 0)
