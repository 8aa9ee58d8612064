"""Refusals that keep a bad model file off the machine: pickles, traversal, links, sizes, ids.

A model folder may hold only what Impasto itself reads: ONNX graphs and the external data
files they name, safetensors, and known text files (JSON configs, tokenizer vocabularies).
Anything else is refused by structure, so no pickle of any protocol gets in under any name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from impasto.formats.safetensors import SafetensorsError, read_header

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
# Pickle streams open with PROTO (0x80) then the protocol number; torch's zip format is a zip.
_PICKLE_PREFIXES = tuple(bytes([0x80, n]) for n in range(2, 6))
_ZIP = b"PK\x03\x04"
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
RAW_DATA_SUFFIXES = frozenset({".onnx", ".onnx_data", ".data", ".pb"})
# Text files a model folder may carry: configs, tokenizer files and documentation.
TEXT_SUFFIXES = frozenset({".json", ".txt", ".md"})
# The marker of the bundled random-weight test models (a line of text; services.models reads it).
TEST_MODEL_MARKER = "impasto-test-model"
TEXT_NAMES = frozenset(
    {"LICENSE", "README", "NOTICE", ".gitattributes", ".gitignore", TEST_MODEL_MARKER}
)
MAX_TEXT_SIZE = 64 * 1024**2
# Free space kept beyond what an unpack or copy writes, for the database and logs.
FREE_SPACE_MARGIN = 256 * 1024**2


class UnsafeContentError(Exception):
    """The content was refused; the message names the file and why."""


def check_id(model_id: str) -> str:
    """Return ``model_id`` if it is a safe folder name, else raise ValueError."""
    if not SAFE_ID.match(model_id) or ".." in model_id:
        raise ValueError(
            f"{model_id!r} is not a valid model id: use letters, digits, '.', '_' and '-' "
            "(at most 80, not starting with a dot)"
        )
    return model_id


def slugify(text: str) -> str:
    """A safe id made from a file name, URL tail or repo name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return slug[:80].lower() or "model"


def sniff(path: Path) -> str:
    """What the first bytes say the file is: pickle, zip, safetensors, onnx or other."""
    with path.open("rb") as fh:
        head = fh.read(16)
    if head.startswith(_PICKLE_PREFIXES):
        return "pickle"
    if head.startswith(_ZIP):
        return "zip"
    if len(head) >= 9:
        (size,) = struct.unpack("<Q", head[:8])
        if 0 < size <= _MAX_SAFETENSORS_HEADER and head[8:9] == b"{":
            return "safetensors"
    if head[:1] == b"\x08":  # ModelProto field 1 (ir_version), a varint
        return "onnx"
    return "other"


def safetensors_header(path: Path) -> dict[str, object]:
    """The JSON header of a .safetensors file; raises UnsafeContentError when it is not one."""
    if sniff(path) != "safetensors":
        raise UnsafeContentError(f"{path.name}: not a safetensors file (a pickle or other format)")
    try:
        return read_header(path)
    except SafetensorsError as exc:
        raise UnsafeContentError(str(exc)) from None


def check_special(path: Path, shown: object | None = None) -> os.stat_result:
    """``lstat`` of ``path``, refusing links, FIFOs, devices and sockets (never opens it)."""
    name = shown if shown is not None else path.name
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeContentError(f"{name}: symbolic links are not accepted")
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise UnsafeContentError(
            f"{name}: is a {file_kind(info.st_mode)}; only regular files and folders can be "
            "installed"
        )
    return info


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device file"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    return "special file"


def open_regular(path: Path, shown: object | None = None) -> int:
    """A read-only descriptor of a regular file; never blocks on a FIFO or device.

    O_NONBLOCK makes opening a FIFO return at once, and the fstat after the open closes the
    race where the file was swapped between the check and the open.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        name = shown if shown is not None else path.name
        raise UnsafeContentError(
            f"{name}: is a {file_kind(info.st_mode)}; only regular files can be installed"
        )
    if flags & getattr(os, "O_NONBLOCK", 0) and hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return fd


def copy_file(
    src: Path,
    dest: Path,
    limit: int,
    cancel: threading.Event | None = None,
    progress: object | None = None,
    shown: object | None = None,
) -> int:
    """Copy one regular file in chunks, refusing it once it grows past ``limit`` bytes."""
    name = shown if shown is not None else src.name
    fd = open_regular(src, name)
    written = 0
    with os.fdopen(fd, "rb") as fh, dest.open("wb") as out:
        while chunk := fh.read(COPY_CHUNK):
            if cancel is not None and cancel.is_set():
                from impasto.services.downloads import InstallCancelled

                raise InstallCancelled("cancelled")
            written += len(chunk)
            if written > limit:
                raise UnsafeContentError(
                    f"{name}: more than {limit} bytes, over the max_file_size limit"
                )
            if written % (64 * COPY_CHUNK) < len(chunk):  # the file may grow while we copy
                check_free_space(dest.parent, COPY_CHUNK)
            out.write(chunk)
            if callable(progress):
                progress(len(chunk))
    return written


def check_file(path: Path, max_file_size: int) -> None:
    """Refuse a single model file by its content and size; its name is never trusted.

    A file on its own must be a safetensors file (an ONNX graph only comes in a folder).
    """
    info = check_special(path)
    if info.st_size > max_file_size:
        raise UnsafeContentError(
            f"{path.name}: {info.st_size} bytes is over the max_file_size limit ({max_file_size})"
        )
    if sniff(path) != "safetensors":
        raise UnsafeContentError(
            f"{path.name}: pickle-based checkpoints (.ckpt/.pt/.bin) and other formats can run "
            "code when loaded and are refused; use a .safetensors or ONNX version of the model"
        )
    safetensors_header(path)


def walk_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Every regular file under ``root`` with its lstat, refusing links and special files."""
    pending = [root]
    while pending:
        folder = pending.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            info = check_special(path, path.relative_to(root).as_posix())
            if stat.S_ISDIR(info.st_mode):
                pending.append(path)
            else:
                yield path, info


def _check_text(path: Path, shown: str) -> None:
    fd = open_regular(path, shown)
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_TEXT_SIZE + 1)
    if len(raw) > MAX_TEXT_SIZE or b"\0" in raw:
        raise UnsafeContentError(f"{shown}: not a text file (binary content or over 64 MiB)")
    try:
        text = raw.decode("utf-8")
        if path.suffix == ".json":
            json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UnsafeContentError(f"{shown}: not valid UTF-8 text or JSON ({exc})") from None


def _external_data(graph: Path, root: Path, shown: str) -> set[Path]:
    """The files under ``root`` that the ONNX graph names as external data."""
    from impasto.engine.onnx_external import read_external_data_locations

    if sniff(graph) != "onnx":
        raise UnsafeContentError(f"{shown}: not an ONNX model (a pickle or other format)")
    try:
        locations = read_external_data_locations(graph)
    except (ValueError, IndexError) as exc:
        raise UnsafeContentError(f"{shown}: not a readable ONNX model ({exc})") from None
    named = set()
    for location in locations:
        target = os.path.normpath(graph.parent / location)
        # One leaving the folder is reported by the engine's own check (ModelFolderError).
        if Path(target).is_relative_to(root):
            named.add(Path(target))
    return named


def check_tree(root: Path, max_file_size: int) -> int:
    """Check every file under ``root`` by structure (see the module doc); returns the total size.

    Links, FIFOs, devices and sockets are refused before anything is opened.
    """
    root = Path(os.path.normpath(root))
    files = list(walk_files(root))
    total = 0
    for path, info in files:
        if info.st_size > max_file_size:
            raise UnsafeContentError(
                f"{path.relative_to(root).as_posix()}: {info.st_size} bytes is over the "
                f"max_file_size limit ({max_file_size})"
            )
        total += info.st_size
    data: set[Path] = set()
    for path, _ in files:
        if path.suffix == ".onnx":
            data |= _external_data(path, root, path.relative_to(root).as_posix())
    for path, _ in files:
        shown = path.relative_to(root).as_posix()
        if path.suffix == ".onnx" or path in data:
            continue
        if path.suffix == ".safetensors":
            safetensors_header(path)
        elif path.suffix in TEXT_SUFFIXES or path.name in TEXT_NAMES:
            _check_text(path, shown)
        else:
            kind = sniff(path)
            what = "a pickle" if kind in ("pickle", "zip") else "not a model file"
            raise UnsafeContentError(
                f"{shown}: {what}; a model folder may hold only ONNX graphs and the external "
                "data they name, .safetensors files and text/JSON configs (pickle-based "
                "files can run code when loaded and are refused)"
            )
    return total


def free_space(folder: Path) -> int:
    """Free bytes on ``folder``'s filesystem (the nearest existing parent's)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def check_free_space(folder: Path, needed: int) -> None:
    """Refuse to write ``needed`` bytes into ``folder`` when its disk cannot take them."""
    free = free_space(folder)
    if needed + FREE_SPACE_MARGIN > free:
        raise UnsafeContentError(
            f"not enough free disk space: this needs about "
            f"{(needed + FREE_SPACE_MARGIN) / 1024**3:.2f} GiB and {free / 1024**3:.2f} GiB is "
            "free; free some space or set temp_dir to a bigger disk"
        )


def copy_tree(
    src: Path, dest: Path, max_file_size: int, cancel: threading.Event | None = None
) -> None:
    """Copy a checked local model folder; links and special files are refused, not followed."""
    src = Path(os.path.normpath(src))
    files = list(walk_files(src))
    check_free_space(dest.parent, sum(info.st_size for _, info in files))
    dest.mkdir(parents=True, exist_ok=True)
    for path, _ in files:
        rel = path.relative_to(src)
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(path, target, max_file_size, cancel, shown=rel.as_posix())
