"""`impasto upscale` and `impasto upscalers`: upscale an image through the daemon."""

from __future__ import annotations

import argparse
import base64
import re
import sys
from pathlib import Path

from impasto.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    STDOUT,
    Context,
    add_json_option,
    finite_float,
    make_folder,
    naming,
    output_path,
    print_json,
    remove_empty,
    stdout_refusal,
    write_new,
    write_stdout,
)
from impasto.client import ApiError

OUTPUT_REF = re.compile(r"^[0-9A-Za-z_-]+/\d+$")


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    """Add `upscale` and `upscalers`."""
    upscale = commands.add_parser(
        "upscale",
        parents=[connection],
        help="upscale an image (a file, or an output as JOB/INDEX) with an upscaler",
    )
    upscale.add_argument(
        "image", help="a PNG/JPEG/WebP file (- reads standard input), or an output as JOB_ID/INDEX"
    )
    upscale.add_argument(
        "--upscaler",
        default="lanczos",
        metavar="NAME",
        help="none, lanczos, nearest or an installed model (`impasto upscalers`)",
    )
    upscale.add_argument("--scale", type=finite_float, default=2.0, help="factor (default 2)")
    upscale.add_argument("--width", type=int, help="upscale to this width (with --height)")
    upscale.add_argument("--height", type=int, help="upscale to this height (with --width)")
    upscale.add_argument(
        "--no-crop",
        dest="crop",
        action="store_false",
        help="with --width/--height: keep the whole upscaled image (by the larger ratio) "
        "instead of centring it on exactly that size",
    )
    upscale.add_argument(
        "-o",
        "--output",
        type=output_path,
        metavar="FILE",
        help="where to write the PNG (default: NAME-UPSCALER.png; -: standard output); a file "
        "already there is kept and the PNG goes to FILE-1.png (-2, ...) instead",
    )
    upscale.set_defaults(handler=run_upscale)
    listing = commands.add_parser(
        "upscalers", parents=[connection], help="list the upscalers the daemon offers"
    )
    add_json_option(listing, "the upscalers as GET /api/v1/upscalers answers them")
    listing.set_defaults(handler=list_upscalers)


def _source(image: str) -> tuple[str, str]:
    """What the daemon is sent (an output reference or inline base64) and a name for the file."""
    if image == "-":  # `curl .../picture.png | impasto upscale - -o big.png`
        return base64.b64encode(sys.stdin.buffer.read()).decode("ascii"), "stdin"
    if OUTPUT_REF.match(image) and not Path(image).is_file():
        return image, image.replace("/", "-")
    path = Path(image)
    return base64.b64encode(path.read_bytes()).decode("ascii"), path.stem


def run_upscale(args: argparse.Namespace, context: Context) -> int:
    """Upscale one image and write the PNG."""
    if (args.width is None) != (args.height is None):
        print("error: give both --width and --height, or neither", file=sys.stderr)
        return EXIT_USAGE
    is_file = args.image == "-" or Path(args.image).is_file()
    if not OUTPUT_REF.match(args.image) and not is_file:
        print(f"error: {args.image} is not a file (nor an output as JOB_ID/INDEX)", file=sys.stderr)
        return EXIT_USAGE
    refusal = stdout_refusal("-o") if args.output is STDOUT else None
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_USAGE
    if args.image == "-" and sys.stdin.isatty():  # it would wait for a picture typed in
        print("error: - reads the picture from standard input: pipe it in", file=sys.stderr)
        return EXIT_USAGE
    source, name = _source(args.image)
    if not source:  # sent as "", the daemon's refusal would be "image: must be text"
        where = "standard input" if args.image == "-" else args.image
        print(f"error: {where}: is empty, not a PNG, JPEG or WebP image", file=sys.stderr)
        return EXIT_FAILED
    output = args.output or Path(f"{name}-{args.upscaler}.png")
    # The PNG's folder is made first, so one that cannot be made costs no upscale, and removed
    # again (when it was new) if nothing is written into it.
    made = [] if output is STDOUT else make_folder(output.parent)
    written = False
    try:
        with context.connect(args) as client:
            try:
                png = client.upscale(
                    source,
                    args.upscaler,
                    args.scale,
                    width=args.width,
                    height=args.height,
                    crop=args.crop,
                )
            except ApiError as exc:  # the body's "image" is the IMAGE argument
                raise naming(exc, "image", args.image) from exc
        if output is STDOUT:
            write_stdout(png)
        else:
            print(write_new(output, png))
        written = True
    finally:
        if not written:
            remove_empty(made)
    return EXIT_OK


def list_upscalers(args: argparse.Namespace, context: Context) -> int:
    """One upscaler a line: its id, its kind and a model's factor."""
    with context.connect(args) as client:
        found = client.upscalers()
    if args.json:
        print_json(found)
        return EXIT_OK
    for item in found:
        scale = f"  {item.scale:g}x" if item.scale else ""
        print(f"{item.id}  ({item.kind}){scale}")
    return EXIT_OK
