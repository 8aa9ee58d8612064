"""A node's copy of the head's files: blobs by sha256, verified, linked into model roots, LRU.

Layout under the cache folder (one per machine, shared by every worker on it):

- ``blobs/<sha256>``: one file's content, renamed into place only after its digest matched;
- ``roots/<key>/``: hard links arranged as a models folder (``<model>/...``, ``loras/...``,
  ``uploads/...``), one per model, so a loaded model keeps one path across jobs;
- ``jobs/<job id>/``: a running job's outputs until they are sent to the head.

Every write goes to a temporary name and is renamed into place, so workers sharing the
folder never see half a file. Eviction drops the least recently used roots, then the blobs
no root links any more, until the blobs fit the size limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

from impasto.worker.ray.messages import Manifest

USED = ".used"  # a root's marker file; its mtime is the root's last use


class FetchError(RuntimeError):
    """A file could not be fetched from the head, or arrived with the wrong content."""


class BlobCache:
    def __init__(self, root: Path, limit: int) -> None:
        self.root = root
        self.limit = limit
        self.blobs = root / "blobs"
        self.roots = root / "roots"
        self.jobs = root / "jobs"
        for folder in (self.blobs, self.roots, self.jobs):
            folder.mkdir(parents=True, exist_ok=True)
        self._partial: dict[str, tuple[Path, hashlib._Hash]] = {}
        self._failed: dict[str, str] = {}
        self._dropping: set[str] = set()  # files abandoned mid-transfer: their chunks go
        self._changed = threading.Condition()

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def missing(self, manifest: Manifest) -> list[str]:
        """The digests of ``manifest`` this node has no verified copy of."""
        return sorted({f.sha256 for f in manifest.files if not self.blob(f.sha256).is_file()})

    def put_chunk(self, sha256: str, offset: int, data: bytes, final: bool, error: str) -> None:
        """Append one chunk of blob ``sha256``; the final one verifies and publishes it."""
        with self._changed:
            if error:
                self._abandon(sha256, error)
                return
            if offset == 0:
                self._dropping.discard(sha256)
                self._drop_partial(sha256)
                part = self.blobs / f".{sha256}.{uuid.uuid4().hex[:8]}.part"
                try:
                    part.touch()
                except OSError as exc:
                    self._abandon(sha256, f"cannot write into {self.blobs}: {exc}")
                    if not final:
                        self._dropping.add(sha256)
                    return
                self._partial[sha256] = (part, hashlib.sha256())
            if sha256 not in self._partial:
                if sha256 in self._dropping:  # the rest of a file already given up on
                    if final:
                        self._dropping.discard(sha256)
                    return
                self._abandon(sha256, f"chunk at {offset} came without the file's start")
                return
            part, digest = self._partial[sha256]
        try:
            with part.open("r+b") as fh:
                fh.seek(offset)
                fh.write(data)
        except OSError as exc:  # a full disk: the waiting job fails with it, nothing hangs
            with self._changed:
                self._abandon(sha256, f"cannot write {sha256[:12]} into {self.blobs}: {exc}")
                if not final:
                    self._dropping.add(sha256)
            return
        digest.update(data)
        if not final:
            return
        with self._changed:
            self._partial.pop(sha256, None)
            if digest.hexdigest() != sha256:
                part.unlink(missing_ok=True)
                self._abandon(sha256, f"file {sha256[:12]} arrived with a different sha256")
                return
            os.replace(part, self.blob(sha256))
            self._failed.pop(sha256, None)
            self._changed.notify_all()

    def wait(self, digests: list[str], timeout: float) -> None:
        """Block until every blob is here; raise FetchError when one failed or time ran out."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                failed = [self._failed.pop(d) for d in digests if d in self._failed]
                if failed:
                    raise FetchError(failed[0])
                if all(self.blob(d).is_file() for d in digests):
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise FetchError(f"{len(digests)} file(s) did not arrive from the head")
                self._changed.wait(left)

    def link(self, manifest: Manifest) -> Path:
        """The models root of ``manifest`` on this node, every file linked to its blob."""
        folder = self.roots / manifest.key
        folder.mkdir(parents=True, exist_ok=True)
        for entry in manifest.files:
            target = folder / entry.path
            if not target.resolve().is_relative_to(folder.resolve()):
                raise FetchError(f"{entry.path!r} leaves the models folder")
            blob = self.blob(entry.sha256)
            with contextlib.suppress(FileNotFoundError):
                if os.path.samefile(target, blob):
                    continue
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
            os.link(blob, temp)
            os.replace(temp, target)
            os.utime(blob)
        (folder / USED).touch()
        return folder

    def job_dir(self, job_id: str) -> Path:
        folder = self.jobs / job_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def evict(self, keep: str) -> list[str]:
        """Drop least recently used roots (never ``keep``) until the blobs fit; returns keys."""
        dropped: list[str] = []
        roots = sorted(
            (p for p in self.roots.iterdir() if p.is_dir() and p.name != keep),
            key=lambda p: _mtime(p / USED),
        )
        # Unlinked blobs are dropped only when over the limit: another worker on this machine
        # may have just fetched one it is about to link.
        while self.size() > self.limit:
            self._drop_unlinked_blobs()
            if self.size() <= self.limit or not roots:
                break
            oldest = roots.pop(0)
            shutil.rmtree(oldest, ignore_errors=True)
            dropped.append(oldest.name)
        return dropped

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.blobs.iterdir() if not p.name.startswith("."))

    def _drop_unlinked_blobs(self) -> None:
        for path in self.blobs.iterdir():
            if not path.name.startswith(".") and path.stat().st_nlink == 1:
                path.unlink(missing_ok=True)

    def _drop_partial(self, sha256: str) -> None:
        part = self._partial.pop(sha256, None)
        if part is not None:
            with contextlib.suppress(OSError):  # the reason to drop it may be a broken disk
                part[0].unlink(missing_ok=True)

    def _abandon(self, sha256: str, reason: str) -> None:
        self._drop_partial(sha256)
        self._failed[sha256] = reason
        self._changed.notify_all()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
