"""Refusals that keep a bad model file off the machine: pickles, traversal, links, sizes, ids."""

from __future__ import annotations

import re
import shutil
import stat
import struct
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from impasto.formats.safetensors import SafetensorsError, read_header

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
# Pickle streams open with PROTO (0x80) then the protocol number; torch's zip format is a zip.
_PICKLE_PREFIXES = tuple(bytes([0x80, n]) for n in range(2, 6))
_ZIP = b"PK\x03\x04"
_MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
RAW_DATA_SUFFIXES = frozenset({".onnx", ".onnx_data", ".data", ".pb"})


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


def check_file(path: Path, max_file_size: int) -> None:
    """Refuse a model file by its content and size; its name is never trusted."""
    if path.is_symlink():
        raise UnsafeContentError(f"{path.name}: symbolic links are not accepted")
    size = path.stat().st_size
    if size > max_file_size:
        raise UnsafeContentError(
            f"{path.name}: {size} bytes is over the max_file_size limit ({max_file_size})"
        )
    # Raw tensor data may begin with any bytes, and nothing ever unpickles it, so only
    # files a loader could deserialise are sniffed.
    kind = "data" if path.suffix in RAW_DATA_SUFFIXES else sniff(path)
    if kind in ("pickle", "zip"):
        raise UnsafeContentError(
            f"{path.name}: pickle-based checkpoints (.ckpt/.pt/.bin) can run code when loaded "
            "and are refused; use a .safetensors or ONNX version of the model"
        )
    if path.suffix == ".safetensors":
        safetensors_header(path)


def check_tree(root: Path, max_file_size: int) -> int:
    """Check every file under ``root`` (no links anywhere); returns the total size."""
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise UnsafeContentError(f"{path.relative_to(root)}: symbolic links are not accepted")
        if path.is_file():
            check_file(path, max_file_size)
            total += path.stat().st_size
    return total


def safe_member(name: str) -> PurePosixPath:
    """An archive member's relative path, refusing absolute paths and '..' (zip-slip)."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if not clean or path.is_absolute() or ".." in path.parts or ":" in clean:
        raise UnsafeContentError(f"archive member {name!r} would land outside the model folder")
    return path


def _copy_limited(src: object, dest: Path, limit: int, name: str) -> int:
    written = 0
    with dest.open("wb") as out:
        while chunk := src.read(COPY_CHUNK):  # type: ignore[attr-defined]
            written += len(chunk)
            if written > limit:
                raise UnsafeContentError(f"archive member {name!r} is over the size limit")
            out.write(chunk)
    return written


def extract_archive(archive: Path, dest: Path, max_file_size: int, max_total: int) -> None:
    """Unpack a .zip or .tar(.gz) into ``dest``, refusing links, traversal and oversize members."""
    dest.mkdir(parents=True, exist_ok=True)
    total = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                rel = safe_member(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeContentError(f"archive member {info.filename!r} is a symlink")
                target = dest.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src:
                    total += _copy_limited(src, target, max_file_size, info.filename)
                if total > max_total:
                    raise UnsafeContentError("the archive unpacks to more than the size limit")
        return
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise UnsafeContentError(f"{archive.name}: not a zip or tar archive") from exc
    with tf:
        for member in tf:
            rel = safe_member(member.name)
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise UnsafeContentError(
                    f"archive member {member.name!r} is a link or device, which is not accepted"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            member_file = tf.extractfile(member)
            assert member_file is not None
            total += _copy_limited(member_file, target, max_file_size, member.name)
            if total > max_total:
                raise UnsafeContentError("the archive unpacks to more than the size limit")


def copy_tree(src: Path, dest: Path, max_file_size: int) -> None:
    """Copy a local model folder after checking it; links are refused, not followed."""
    check_tree(src, max_file_size)
    shutil.copytree(src, dest, symlinks=True)
