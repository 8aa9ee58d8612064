"""`impasto generate`: submit, follow the progress, save the images."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from impasto.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STDOUT,
    Context,
    make_folder,
    naming,
    remove_empty,
    stdout_refusal,
    terminate_as_interrupt,
    write_new,
    write_stdout,
)
from impasto.cli.generate_args import HIRES_FLAGS, REQUEST_FIELDS, add_arguments, default_output_dir
from impasto.cli.progress import ProgressBar
from impasto.client import ApiError, Client, DaemonNotRunning, JobStatus

# Seconds `generate` waits for a daemon that stopped under its job to answer again, and
# between its tries.
RECONNECT_GRACE_S = 60.0
RECONNECT_POLL_S = 1.0
IMAGE_FLAGS = (
    ("init_image", "init_image"),
    ("mask", "mask_image"),
    ("color_reference", "color_reference"),
)
"""The flags naming a picture file -> the request field its upload goes in."""


# What ``-o NAME.jpg`` would promise: a picture of another type (it would be a folder).
OTHER_PICTURE_TYPES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")
# Flags that mean something only beside another: a run from an image, an inpainting mask, a
# refiner.
NEEDS = {
    "init_image": (
        "mask",
        "strength",
        "resize_mode",
        "noise_multiplier",
        "color_correction",
        "color_reference",
    ),
    "mask": ("inpaint_area", "inpaint_padding", "masked_content"),
    "refiner": ("refiner_switch",),
}


def _option(flag: str) -> str:
    """The command-line spelling of a flag's name: ``init_image`` -> ``--init-image``."""
    return "--" + flag.replace("_", "-")


OPTIONS = {
    **{field: _option(flag) for flag, field in (*REQUEST_FIELDS.items(), *IMAGE_FLAGS)},
    **{f"hires.{field}": _option(flag) for flag, field in HIRES_FLAGS.items()},
    **dict.fromkeys(("hires.scale", "hires.width", "hires.height"), "--hires"),
    **dict.fromkeys(("seed_resize_from_width", "seed_resize_from_height"), "--seed-resize-from"),
    "loras": "--lora",
    "plugins": "--plugin",
}
"""Request field -> the option that fills it, for the daemon's refusals."""


def _naming_options(exc: ApiError) -> ApiError:
    """The daemon names request fields; where the option is spelled otherwise (``cfg_scale``
    from ``--cfg``, ``loras[0].weight`` from ``--lora``) the refusal names the option too."""
    for error in exc.errors:
        field = re.sub(r"\[\d+\].*$", "", error.field)
        option = OPTIONS.get(field) or OPTIONS.get(field.split(".", 1)[0])  # plugins.NAME
        if option is not None and option != _option(error.field):
            exc = naming(exc, error.field, f"{error.field} ({option})")
    return exc


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `generate`."""
    parser = commands.add_parser(
        "generate",
        parents=[connection],
        help="generate images with the running daemon",
        description="Queue a generation, show its progress and save the images as PNG files.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=generate)


def build_request(args: argparse.Namespace, client: Client) -> dict[str, Any]:
    """The POST /generate body; init image and mask are uploaded first."""
    request: dict[str, Any] = {"prompt": args.prompt}
    for flag, field in REQUEST_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            request[field] = value
    if args.loras:
        request["loras"] = args.loras
    if args.plugins:
        request["plugins"] = dict(args.plugins)
    if args.tiling_axis is not None:
        request["tiling"] = args.tiling_axis
    if args.seed_resize_from is not None:
        width, height = args.seed_resize_from
        request["seed_resize_from_width"], request["seed_resize_from_height"] = width, height
    if args.hires is not None:
        extra = {f: getattr(args, flag) for flag, f in HIRES_FLAGS.items()}
        request["hires"] = {**args.hires, **{k: v for k, v in extra.items() if v is not None}}
    for flag, field in IMAGE_FLAGS:
        path: Path | None = getattr(args, flag)
        if path is not None:
            request[field] = f"upload:{_upload(client, path, _option(flag))}"
    return request


def _upload(client: Client, path: Path, option: str) -> str:
    """Upload one picture; a refusal names the option and the file, not the multipart field
    ("file") the client sent it in."""
    try:
        return client.upload_image(path)
    except ApiError as exc:
        raise naming(exc, "file", f"{option} {path}") from exc


def generate(args: argparse.Namespace, context: Context) -> int:
    """Submit, wait with a progress bar, download the images; Ctrl+C cancels the job."""
    for flag, _ in IMAGE_FLAGS:
        path = getattr(args, flag)
        if path is not None and not path.is_file():  # a usage error, as `impasto upscale`'s
            print(f"error: {_option(flag)}: {path} is not a file", file=sys.stderr)
            return EXIT_USAGE
    stray = [_option(flag) for flag in HIRES_FLAGS if getattr(args, flag) is not None]
    if args.hires is None and stray:  # build_request would drop them without a word
        print(
            f"error: {', '.join(stray)}: the hires pass is off without --hires: add --hires 2x "
            "(a scale, 1..4) or --hires WxH",
            file=sys.stderr,
        )
        return EXIT_USAGE
    for needed, flags in NEEDS.items():  # meaningless alone: the daemon would ignore them
        stray = [_option(flag) for flag in flags if getattr(args, flag) is not None]
        if getattr(args, needed) is None and stray:
            print(f"error: {', '.join(stray)}: only with {_option(needed)}", file=sys.stderr)
            return EXIT_USAGE
    folder = args.output or default_output_dir()
    if folder is not STDOUT and folder.suffix.lower() in OTHER_PICTURE_TYPES:
        print(
            f"error: -o {folder}: the pictures are PNGs (their parameters ride in them); "
            f"give -o {folder.with_suffix('.png')} or a folder",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if folder is STDOUT and not args.detach:
        refusal = stdout_refusal("-o")
        if args.json:
            refusal = "--json and -o - both write to standard output: give -o DIR with --json"
        if refusal is None and (args.batch or 1) > 1:
            refusal = "-o - writes one picture to standard output: give -o DIR for a --batch"
        if refusal is not None:
            print(f"error: {refusal}", file=sys.stderr)
            return EXIT_USAGE
    # Made before the job, so a folder that cannot be made costs no generation; removed again
    # (when still empty) if no picture lands in it.
    made = [] if args.detach or folder is STDOUT else make_folder(_destination(folder)[0])
    saved = False
    try:
        with terminate_as_interrupt(), context.connect(args) as client:
            code = _run(args, client, folder)
            saved = code == EXIT_OK and not args.detach
            return code
    finally:
        if not saved:
            remove_empty(made)


def _run(args: argparse.Namespace, client: Client, folder: Path) -> int:
    request = build_request(args, client)
    try:
        job_id, position = client.submit(request)
    except ApiError as exc:
        raise _naming_options(exc) from exc
    if args.detach:
        print(_json({"id": job_id, "position": position}) if args.json else job_id)
        return EXIT_OK
    if not args.quiet:
        print(f"Queued job {job_id} (position {position})", file=sys.stderr)
    if _paused(client):  # else it would wait without a word until resumed
        print(
            f"The queue is paused: job {job_id} waits for `impasto queue resume` "
            "(Ctrl+C cancels it).",
            file=sys.stderr,
        )
    while True:
        bar = ProgressBar(sys.stderr)
        try:
            final = client.wait(job_id, on_progress=None if args.quiet else bar.update)
            break
        except KeyboardInterrupt:  # Ctrl+C or SIGTERM: main() exits 130 or 143
            bar.close()
            _cancel(client, job_id)
            raise
        except DaemonNotRunning:  # stopped under the job, which is kept: wait for its return
            bar.close()
            kept = (
                f"The daemon stopped; job {job_id} is kept and runs when it starts again "
                "(`impasto history --save DIR` fetches its pictures then)."
            )
            try:
                back = _daemon_back(client, job_id)
            except KeyboardInterrupt:  # stops waiting: exit 130, as any Ctrl+C
                print(kept, file=sys.stderr)
                raise
            if not back:
                print(kept, file=sys.stderr)
                raise
    bar.close()
    for warning in final.warnings:  # a LoRA whose weights matched nothing, ...
        print(f"warning: {warning}", file=sys.stderr)
    if final.status != "completed":
        code = _report_unfinished(final)
        if args.json:
            print(_json({"job": final, "files": []}))
        return code
    where, name = _destination(folder)
    files = save_images(client, final, where, show=not args.json, name=name)
    if args.json:
        print(_json({"job": final, "files": [str(path) for path in files]}))
    return EXIT_OK


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _paused(client: Client) -> bool:
    """Whether the daemon's queue is paused; a daemon that does not say is taken as not (the
    wait that follows reports a stopped one)."""
    try:
        return client.queue().paused
    except (ApiError, DaemonNotRunning):
        return False


def _daemon_back(client: Client, job_id: str) -> bool:
    """Whether the daemon answers again within RECONNECT_GRACE_S (the tray or a service
    manager restarting it after a crash; its queue kept the job); Ctrl+C stops waiting."""
    print(
        f"The daemon stopped; waiting up to {RECONNECT_GRACE_S:g} s for it to come back "
        f"(job {job_id} is kept; Ctrl+C stops waiting)...",
        file=sys.stderr,
    )
    deadline = time.monotonic() + RECONNECT_GRACE_S
    while time.monotonic() < deadline:
        try:
            client.health()
        except DaemonNotRunning:
            time.sleep(RECONNECT_POLL_S)
            continue
        except ApiError:  # it answers (a health problem is the job's to report)
            pass
        print(f"The daemon is back; following job {job_id}", file=sys.stderr)
        return True
    return False


def _destination(output: Path) -> tuple[Path, str | None]:
    """The folder the pictures go in and, for ``-o NAME.png`` (not a folder already), their own
    name: what A1111 scripts and ``curl -o`` users give, where a folder named ``NAME.png``
    would surprise them."""
    if output is not STDOUT and output.suffix.lower() == ".png" and not output.is_dir():
        return output.parent, output.name
    return output, None


def save_images(
    client: Client, job: JobStatus, folder: Path, *, show: bool = True, name: str | None = None
) -> list[Path]:
    """Download a finished job's images into ``folder`` as ``JOB-INDEX.png`` (``JOB-INDEX-1.png``
    and on where that is taken: nothing is replaced); print each path written unless not
    ``show``; return them. A ``name`` (``door.png``) names the picture instead, ``door-INDEX.png``
    in a batch. To STDOUT (``-o -``) the PNG bytes go instead."""
    batch = len(job.results) > 1
    written: list[Path] = []
    closed: BrokenPipeError | None = None  # whoever read the paths stopped (`| head -1`)
    for result in job.results:
        png = client.download_image(job.id, result.index)
        if folder is STDOUT:
            write_stdout(png)
            written.append(STDOUT)
            continue
        if name is None:
            file = f"{job.id}-{result.index}.png"
        else:
            file = f"{name[:-4]}-{result.index}{name[-4:]}" if batch else name
        path = write_new(folder / file, png)
        written.append(path)
        if show and closed is None:
            try:
                print(path, flush=True)
            except BrokenPipeError as exc:  # the other pictures are still saved
                closed = exc
    if closed is not None:
        raise closed
    return written


def _cancel(client: Client, job_id: str) -> None:
    print(f"Cancelling job {job_id}...", file=sys.stderr)
    try:
        client.cancel(job_id)
    except ApiError as exc:
        if exc.status != 409:  # 409: it finished meanwhile, nothing left to cancel
            raise


def _report_unfinished(final: JobStatus) -> int:
    if final.status == "failed":
        print(f"error: job {final.id} failed: {final.error}", file=sys.stderr)
    else:
        print(f"Job {final.id} was {final.status}.", file=sys.stderr)
    return EXIT_FAILED
