"""Output PNGs: atomic writes and embedded parameters that AUTOMATIC1111-aware tools read."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image, PngImagePlugin

from impasto.formats.png_text import is_png, png_text

PARAMETERS_KEY = "parameters"
IMPASTO_KEY = "impasto"
TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"

# AUTOMATIC1111's own patterns (modules/infotext_utils.py), so we read what it reads.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
IMAGE_SIZE = re.compile(r"^(\d+)x(\d+)$")
CHURN_LABELS = {
    "s_churn": "Sigma churn",
    "s_tmin": "Sigma tmin",
    "s_tmax": "Sigma tmax",
    "s_noise": "Sigma noise",
}
"""A1111's labels of the sigma churn settings (the request's fields are its option names)."""
BOUND_LABELS = {
    "sigma_min": "Schedule min sigma",
    "sigma_max": "Schedule max sigma",
    "rho": "Schedule rho",
}
"""A1111's labels of the schedule bounds (the request's fields are its option names)."""
UNCOND_SKIP_LABELS = {
    "s_min_uncond": "NGMS",
    "s_min_uncond_all": "NGMS all steps",
    "skip_early_cond": "Skip Early CFG",
}
"""A1111's labels of the settings that skip the negative prompt's pass (its option names)."""
UNIPC_LABELS = {"unipc_order": "UniPC order", "unipc_variant": "UniPC variant"}
"""A1111's labels of its UniPC options (``uni_pc_order``, ``uni_pc_variant``)."""
IMAGE_STEPS_LABEL = "Img2img steps"
"""Impasto's label of how a run from an image counts its steps (the request's
``img2img_steps``); A1111 has none and keeps an unknown label as it is."""
A1111_IMAGE_STEPS = {"img2img": "a1111", "hires": "exact"}
"""How A1111 counts the steps of each pass that starts from an image, without options: a text
with no ``Img2img steps`` label means these (A1111's own pictures say nothing)."""
_NEGATIVE = "Negative prompt:"

# Our field name for each A1111 key, and how its text becomes a value.
_KNOWN_FIELDS: dict[str, tuple[str, type]] = {
    "Steps": ("steps", int),
    "Sampler": ("sampler_name", str),
    "Schedule type": ("schedule_type", str),
    "CFG scale": ("cfg_scale", float),
    "Seed": ("seed", int),
    "Model": ("model", str),
}


def quote_value(value: object) -> str:
    """A1111's quoting: JSON-quote a value that holds a comma, a colon or a newline, and one
    that starts with a quote (A1111's reader would take its quotes for quoting and drop them)."""
    text = _number(value) if isinstance(value, float) else str(value)
    if "," not in text and "\n" not in text and ":" not in text and not text.startswith('"'):
        return text
    return json.dumps(text, ensure_ascii=False)


def _unquote(text: str) -> str:
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _number(value: float) -> str:
    # A1111 shows a whole CFG scale as "7", not "7.0".
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_a1111_parameters(
    *,
    prompt: str,
    negative_prompt: str | None,
    steps: int,
    sampler_name: str,
    schedule_type: str | None,
    cfg_scale: float,
    seed: int,
    width: int,
    height: int,
    model: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The ``parameters`` text AUTOMATIC1111 writes: prompt, negative prompt, settings line.

    ``sampler_name`` and ``schedule_type`` are written as given: the sampler registry's labels.
    """
    fields: dict[str, Any] = {
        "Steps": steps,
        "Sampler": sampler_name,
        "Schedule type": schedule_type or None,
        "CFG scale": float(cfg_scale),
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model": model or None,
        **(extra or {}),
    }
    settings = ", ".join(
        f"{key}: {quote_value(value)}" for key, value in fields.items() if value is not None
    )
    negative = f"\n{_NEGATIVE} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{settings}".strip()


def with_labels(text: str, labels: dict[str, Any]) -> str:
    """``text`` (A1111's ``parameters``, ours with its settings line) with ``labels`` added at
    the end of its settings line, replacing a label it has."""
    if not labels:
        return text
    head, _, last = text.rpartition("\n")
    if len(_PARAM.findall(last)) < 3:  # no settings line: the labels start one
        head, last = text, ""
    kept = [f"{key}: {value}" for key, value in _PARAM.findall(last) if key not in labels]
    kept += [f"{key}: {quote_value(value)}" for key, value in labels.items()]
    return f"{head}\n{', '.join(kept)}".strip()


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Read A1111's ``parameters`` text back into our field names; unknown keys go to ``extra``.

    Returns prompt, negative_prompt, steps, sampler_name, schedule_type, cfg_scale, seed,
    width, height, model (``None`` when absent) and extra (A1111 key -> text).
    """
    *lines, last = text.strip().split("\n")
    # As in A1111: a last line with fewer than three settings is part of the prompt.
    if len(_PARAM.findall(last)) < 3:
        lines.append(last)
        last = ""
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    in_negative = False
    for raw in lines:
        line = raw.strip()
        if line.startswith(_NEGATIVE):
            in_negative = True
            line = line[len(_NEGATIVE) :].strip()
        (negative_lines if in_negative else prompt_lines).append(line)
    result: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines),
        "negative_prompt": "\n".join(negative_lines),
        **{name: None for name, _ in _KNOWN_FIELDS.values()},
        "width": None,
        "height": None,
        "extra": {},
    }
    for key, raw_value in _PARAM.findall(last):
        value = _unquote(raw_value)
        size = IMAGE_SIZE.match(value)
        if key == "Size" and size is not None:
            result["width"], result["height"] = int(size.group(1)), int(size.group(2))
        elif key in _KNOWN_FIELDS:
            name, convert = _KNOWN_FIELDS[key]
            try:
                result[name] = convert(value)
            except ValueError:
                result["extra"][key] = value
        else:
            result["extra"][key] = value
    return result


def write_png(
    image: Image.Image,
    path: Path,
    *,
    parameters: str | None = None,
    request_json: dict[str, Any] | None = None,
    text: dict[str, str] | None = None,
) -> Path:
    """Write ``image`` with its metadata to a temp file and rename it into place atomically."""
    path = Path(path)
    info = PngImagePlugin.PngInfo()
    # add_text writes tEXt when the text is Latin-1 and iTXt otherwise, as A1111 does.
    if parameters is not None:
        info.add_text(PARAMETERS_KEY, parameters)
    if request_json is not None:
        info.add_itxt(IMPASTO_KEY, json.dumps(request_json, ensure_ascii=False))
    for key, value in (text or {}).items():
        info.add_text(key, value)
    return write_atomically(path, lambda file: image.save(file, format="PNG", pnginfo=info))


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write a file through ``write`` into a temp file beside ``path``, synced, then renamed.

    Readers see the old file or the whole new one, never a part; a failure leaves no temp file.
    """
    fd, temp_name = tempfile.mkstemp(
        prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(folder: Path) -> None:
    # Makes the rename itself survive a power loss; directories cannot be opened on Windows.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_png_metadata(source: Path | str | bytes) -> dict[str, Any]:
    """The ``parameters`` text and the ``impasto`` request of a PNG (``None`` where absent)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    if is_png(data):  # the chunks alone: decoding the pixels could be a decompression bomb
        chunks: dict[str, Any] = dict(png_text(data))
    else:
        with Image.open(io.BytesIO(data)) as image:  # other formats: the header's .info
            chunks = {str(k): v for k, v in image.info.items()}
    parameters = chunks.get(PARAMETERS_KEY)
    raw_request = chunks.get(IMPASTO_KEY)
    request: dict[str, Any] | None = None
    if isinstance(raw_request, str):
        try:
            decoded = json.loads(raw_request)
        except ValueError:
            decoded = None
        request = decoded if isinstance(decoded, dict) else None
    return {
        "parameters": str(parameters) if parameters is not None else None,
        IMPASTO_KEY: request,
    }


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files a crash left behind under ``folder``; return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for candidate in folder.rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}"):
        if candidate.is_file() and not candidate.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed += 1
    return removed


EXIF_IFD, USER_COMMENT = 0x8769, 0x9286
# EXIF's UserComment starts with 8 bytes naming its encoding; A1111 (piexif) writes UNICODE,
# UTF-16 big-endian.
COMMENT_ENCODINGS = {b"UNICODE\0": "utf-16-be", b"ASCII\0\0\0": "ascii", b"\0" * 8: "utf-8"}


def exif_user_comment(image: Image.Image) -> str:
    """The EXIF UserComment of a JPEG or WebP ("" when there is none), as A1111 reads it."""
    try:
        comment = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except (OSError, ValueError, SyntaxError):  # a damaged EXIF block
        return ""
    if isinstance(comment, str):
        return comment
    if not isinstance(comment, bytes):
        return ""
    encoding = COMMENT_ENCODINGS.get(comment[:8])
    if encoding is None:
        return comment.decode("utf-8", "replace")
    return comment[8:].decode(encoding, "replace").rstrip("\0")
