"""Unpacking .zip and .tar(.gz) installs: no traversal, no links, no decompression bombs."""

from __future__ import annotations

import lzma
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from impasto import fsnames
from impasto.services.safety import (
    COPY_CHUNK,
    FREE_SPACE_MARGIN,
    UnsafeContentError,
    check_free_space,
    free_space,
)

# An archive member may unpack to at most this many times its compressed size: model weights
# barely compress, so a higher ratio is a decompression bomb (a 300 MB member of zeros in a
# 306 KB zip is about 1000:1).
MAX_COMPRESSION_RATIO = 100
# A model folder holds a few dozen files (a diffusers repo with two tokenizers about 40); an
# archive of more is not a model, and a million empty members would still fill the disk's
# inodes and the install's time.
MAX_MEMBERS = 2000


def _too_many() -> UnsafeContentError:
    return UnsafeContentError(
        f"the archive holds more than {MAX_MEMBERS} members; a model has a few dozen files"
    )


def safe_member(name: str) -> PurePosixPath:
    """An archive member's relative path, refusing absolute paths and '..' (zip-slip), and
    names Windows would read as a drive, stream or device (fsnames.inside_path)."""
    clean = name.replace("\\", "/")
    path = PurePosixPath(clean)
    if not clean or path.is_absolute() or not fsnames.inside_path(str(path)):
        raise UnsafeContentError(f"archive member {name!r} would land outside the model folder")
    return path


class _Budget:
    """What an unpack may still write: the member limit, the total limit and the disk."""

    def __init__(self, dest: Path, max_file_size: int, max_total: int, packed: int) -> None:
        self.dest = dest
        self.max_file_size = max_file_size
        # The whole archive may not unpack to more than MAX_COMPRESSION_RATIO times its size.
        self.max_total = min(max_total, max(packed, 1) * MAX_COMPRESSION_RATIO)
        self.total = 0
        self.free = free_space(dest) - FREE_SPACE_MARGIN

    def declare(self, name: str, size: int, packed: int | None) -> None:
        """Refuse a member by what the archive says about it, before unpacking anything."""
        if size > self.max_file_size:
            raise UnsafeContentError(f"archive member {name!r} is over the size limit")
        bomb = size > max(packed or 0, 1) * MAX_COMPRESSION_RATIO and size > COPY_CHUNK
        if packed is not None and bomb:
            raise UnsafeContentError(
                f"archive member {name!r} unpacks to {size} bytes from {packed}: over the "
                f"{MAX_COMPRESSION_RATIO}:1 compression limit (a decompression bomb)"
            )

    def copy(self, src: object, dest: Path, name: str, limit: int) -> None:
        """Unpack one member, counting what is really written (the declared sizes may lie)."""
        written = 0
        with dest.open("wb") as out:
            while chunk := src.read(COPY_CHUNK):  # type: ignore[attr-defined]
                written += len(chunk)
                self.total += len(chunk)
                if written > min(limit, self.max_file_size):
                    raise UnsafeContentError(
                        f"archive member {name!r} is over the size limit or unpacks to more "
                        f"than {MAX_COMPRESSION_RATIO} times its compressed size"
                    )
                if self.total > self.max_total:
                    raise UnsafeContentError(
                        "the archive unpacks to more than the size limit "
                        f"(max_file_size, or {MAX_COMPRESSION_RATIO} times its own size)"
                    )
                if self.total > self.free:
                    raise UnsafeContentError(
                        "not enough free disk space to unpack the archive; free some space "
                        "or set temp_dir to a bigger disk"
                    )
                out.write(chunk)


def extract_archive(archive: Path, dest: Path, max_file_size: int, max_total: int) -> None:
    """Unpack a .zip or .tar(.gz) into ``dest``, refusing links, traversal, bombs and oversize.

    Sizes are checked before unpacking (what the archive declares, against the limits, the
    compression ratio and the free disk space) and again while writing. A damaged or
    truncated archive is an UnsafeContentError that says so, like every other refusal.
    """
    try:
        _extract(archive, dest, max_file_size, max_total)
    except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, lzma.LZMAError) as exc:
        raise UnsafeContentError(
            f"{archive.name} is damaged or cut short ({exc}); download it again"
        ) from None


def _extract(archive: Path, dest: Path, max_file_size: int, max_total: int) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(dest, max_file_size, max_total, archive.stat().st_size)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > MAX_MEMBERS:
                raise _too_many()
            for info in members:
                safe_member(info.filename)
                budget.declare(info.filename, info.file_size, info.compress_size)
            declared = sum(i.file_size for i in members)
            if declared > budget.max_total:
                raise UnsafeContentError("the archive unpacks to more than the size limit")
            check_free_space(dest, declared)
            for info in members:
                rel = safe_member(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeContentError(f"archive member {info.filename!r} is a symlink")
                target = dest.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                limit = max(info.compress_size, 1) * MAX_COMPRESSION_RATIO
                with zf.open(info) as src:
                    budget.copy(src, target, info.filename, max(limit, COPY_CHUNK))
        return
    try:
        tf = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below
    except tarfile.TarError as exc:
        raise UnsafeContentError(f"{archive.name}: not a zip or tar archive") from exc
    with tf:
        for count, member in enumerate(tf, start=1):
            if count > MAX_MEMBERS:  # counted as read: a tar has no index to count first
                raise _too_many()
            rel = safe_member(member.name)
            target = dest.joinpath(*rel.parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise UnsafeContentError(
                    f"archive member {member.name!r} is a link or device, which is not accepted"
                )
            budget.declare(member.name, member.size, None)
            target.parent.mkdir(parents=True, exist_ok=True)
            member_file = tf.extractfile(member)
            assert member_file is not None
            budget.copy(member_file, target, member.name, member.size)
