"""Refusals that keep a bad model file off the machine: pickles, traversal, links, sizes, ids.

A model folder may hold only what Impasto itself reads: ONNX graphs and the external data
files they name, safetensors, and known text files (JSON configs, tokenizer vocabularies).
Anything else is refused by structure, so no pickle of any protocol gets in under any name.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import stat
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from impasto.formats.safetensors import SafetensorsError, read_header
from impasto.fsnames import plain_name

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
    if not SAFE_ID.match(model_id) or ".." in model_id or not plain_name(model_id):
        raise ValueError(
            f"{model_id!r} is not a valid model id: use letters, digits, '.', '_' and '-' "
            "(at most 80, not starting or ending with a dot, not a Windows device name such "
            "as CON or NUL)"
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


@dataclass(frozen=True)
class TreeFile:
    """One regular file of a model folder: its name in the folder and the file to read."""

    rel: PurePosixPath  # as the model names it (a link's own name, not its target's)
    path: Path  # the file itself, or the regular file its link resolves to
    info: os.stat_result  # lstat of ``path``


def walk_files(root: Path, link_roots: Sequence[Path] | None = None) -> Iterator[TreeFile]:
    """Every regular file under ``root``, refusing special files; links per ``link_roots``.

    With ``link_roots`` None every symbolic link is refused. Otherwise a link to a regular
    file that resolves inside one of ``link_roots`` (empty: anywhere, as the install_roots
    setting) stands for that file, as in a Hugging Face cache snapshot (each file a link
    into ``blobs/``) or a models folder that links to a shared disk; a link to a folder, to
    a special file or outside the roots is refused without saying where it points.
    """
    pending = [root]
    while pending:
        folder = pending.pop()
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            rel = PurePosixPath(path.relative_to(root).as_posix())
            if link_roots is not None and entry.is_symlink():
                target = _link_target(path, rel, link_roots)
                yield TreeFile(rel, target, os.lstat(target))
                continue
            info = check_special(path, rel)
            if stat.S_ISDIR(info.st_mode):
                pending.append(path)
            else:
                yield TreeFile(rel, path, info)


def _link_target(link: Path, rel: PurePosixPath, roots: Sequence[Path]) -> Path:
    """The regular file ``link`` resolves to inside ``roots``; UnsafeContentError otherwise."""
    target = Path(os.path.realpath(link))
    if roots and not any(target.is_relative_to(root) for root in roots):
        raise UnsafeContentError(
            f"{rel}: a symbolic link that leads outside the folders local installs may read "
            "(the install_roots setting)"
        )
    try:
        info = os.lstat(target)
    except OSError:
        raise UnsafeContentError(f"{rel}: a symbolic link to nothing (broken link)") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeContentError(
            f"{rel}: a symbolic link to a folder or special file; only links to regular "
            "files are followed"
        )
    return target


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


def _external_data(graph: TreeFile) -> set[PurePosixPath]:
    """The files of the folder (by their names in it) that the ONNX graph names as data."""
    from impasto.engine.onnx_external import read_external_data_locations

    shown = graph.rel.as_posix()
    if sniff(graph.path) != "onnx":
        raise UnsafeContentError(f"{shown}: not an ONNX model (a pickle or other format)")
    try:
        locations = read_external_data_locations(graph.path)
    except (ValueError, IndexError) as exc:
        raise UnsafeContentError(f"{shown}: not a readable ONNX model ({exc})") from None
    named = set()
    for location in locations:
        # posixpath: a folder's names are "/"-separated on every OS (os.path would give
        # backslashes on Windows, which no name in the folder has).
        target = PurePosixPath(posixpath.normpath(f"{graph.rel.parent}/{location}"))
        # One leaving the folder is reported by the engine's own check (ModelFolderError).
        if not target.is_absolute() and target.parts[:1] != ("..",):
            named.add(target)
    return named


def check_tree(root: Path, max_file_size: int, link_roots: Sequence[Path] | None = None) -> int:
    """Check every file under ``root`` by structure (see the module doc); returns the total size.

    Special files are refused before anything is opened; links as ``walk_files`` says.
    """
    root = Path(os.path.normpath(root))
    files = list(walk_files(root, link_roots))
    total = 0
    for file in files:
        if file.info.st_size > max_file_size:
            raise UnsafeContentError(
                f"{file.rel}: {file.info.st_size} bytes is over the max_file_size limit "
                f"({max_file_size})"
            )
        total += file.info.st_size
    data: set[PurePosixPath] = set()
    for file in files:
        if file.rel.suffix == ".onnx":
            data |= _external_data(file)
    for file in files:
        shown = file.rel.as_posix()
        if file.rel.suffix == ".onnx" or file.rel in data:
            continue
        if file.rel.suffix == ".safetensors":
            safetensors_header(file.path)
        elif file.rel.suffix in TEXT_SUFFIXES or file.rel.name in TEXT_NAMES:
            _check_text(file.path, shown)
        else:
            kind = sniff(file.path)
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
    src: Path,
    dest: Path,
    max_file_size: int,
    cancel: threading.Event | None = None,
    link_roots: Sequence[Path] | None = None,
) -> None:
    """Copy a checked local model folder; a followed link is copied as its file's content."""
    src = Path(os.path.normpath(src))
    files = list(walk_files(src, link_roots))
    check_free_space(dest.parent, sum(file.info.st_size for file in files))
    dest.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = dest.joinpath(*file.rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(file.path, target, max_file_size, cancel, shown=file.rel.as_posix())
