"""Resumable HTTP downloads: Range + If-Range on a ``.part`` file, size limits, sha256 checks."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from impasto.services.safety import check_free_space

# httpx logs every request at INFO; a model is hundreds of requests the daemon log can skip.
logging.getLogger("httpx").setLevel(logging.WARNING)

CHUNK = 256 * 1024
FREE_SPACE_EVERY = 64 * 1024 * 1024  # bytes between free-space checks while downloading
RETRIES = 6  # connection drops in a row, with no byte received between them, before giving up


class InstallCancelled(Exception):
    """The install was cancelled (or the daemon is stopping) while it ran."""


class DownloadError(Exception):
    """A download failed for a reason retrying will not fix; the message says which file."""


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its URL and where it goes relative to the model folder."""

    url: str
    path: str
    size: int | None = None
    sha256: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: "Name or service not known", not three wrappers around it."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def network_problem(url: str, exc: BaseException) -> str:
    """Why ``url`` could not be reached, naming its host, and what the user can check."""
    host = urlsplit(url).hostname or url
    cause = _root_cause(exc)
    reason = getattr(cause, "strerror", None) or str(cause).strip() or type(cause).__name__
    return (
        f"cannot reach {host} ({reason}): check the network connection and any proxy "
        "(HTTPS_PROXY), or point hf_endpoint / HF_ENDPOINT at a reachable mirror"
    )


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _etag_file(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


def _stream_once(
    client: httpx.Client,
    remote: RemoteFile,
    part: Path,
    max_size: int,
    progress: Callable[[int], None],
    cancel: threading.Event,
) -> bool:
    """One GET from the current end of ``part``; True when the file is complete."""
    offset = part.stat().st_size if part.exists() else 0
    headers = dict(remote.headers)
    etag_file = _etag_file(part)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if etag_file.exists():
            # If the file changed upstream the server sends it whole instead of a stale tail.
            headers["If-Range"] = etag_file.read_text()
    with client.stream("GET", remote.url, headers=headers) as response:
        if response.status_code == 416 and offset and offset == remote.size:
            return True
        if response.status_code not in (200, 206):
            detail = f"HTTP {response.status_code}"
            if response.status_code in (401, 403):
                detail += " (a private or gated repo needs hf_token / HF_TOKEN)"
            raise DownloadError(f"{remote.path}: {detail} from {remote.url}")
        if response.status_code == 200 and offset:
            progress(-offset)  # the server ignored the range: start over
            offset = 0
        elif response.status_code == 206:
            start = response.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
            if start != str(offset):
                raise DownloadError(f"{remote.path}: the server resumed at the wrong offset")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else remote.size
        if total is not None and total > max_size:
            raise DownloadError(
                f"{remote.path}: {total} bytes is over the max_file_size limit ({max_size})"
            )
        etag = response.headers.get("ETag")
        if etag:
            etag_file.write_text(etag)
        with part.open("ab" if offset else "wb") as out:
            for chunk in response.iter_bytes(CHUNK):
                if cancel.is_set():
                    raise InstallCancelled("cancelled")
                out.write(chunk)
                offset += len(chunk)
                if offset > max_size:
                    raise DownloadError(f"{remote.path}: over the max_file_size limit")
                if offset % FREE_SPACE_EVERY < len(chunk):  # a body without a length, say
                    check_free_space(part.parent, FREE_SPACE_EVERY)
                progress(len(chunk))
        return total is None or offset >= total


def fetch(
    remote: RemoteFile,
    dest: Path,
    *,
    max_size: int,
    progress: Callable[[int], None],
    cancel: threading.Event,
    timeout: float = 30.0,
) -> str:
    """Download ``remote`` to ``dest`` (resuming ``dest.part``); returns the file's sha256.

    A dropped connection resumes where it stopped; a wrong sha256 deletes the partial file.
    """
    if dest.exists():
        return sha256_of(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    drops = 0
    with httpx.Client(follow_redirects=True, timeout=timeout) as client:
        while True:
            if cancel.is_set():
                raise InstallCancelled("cancelled")
            before = part.stat().st_size if part.exists() else 0
            error: Exception | None = None
            try:
                if _stream_once(client, remote, part, max_size, progress, cancel):
                    break
            except httpx.TransportError as exc:
                error = exc
            got = (part.stat().st_size if part.exists() else 0) - before
            drops = 0 if got > 0 else drops + 1
            if drops >= RETRIES:
                why = network_problem(remote.url, error) if error else "the connection closed early"
                raise DownloadError(f"{remote.path}: {why}")
            time.sleep(min(0.2 * 2**drops, 5.0))
    size = part.stat().st_size
    if remote.size is not None and size != remote.size:
        part.unlink()
        raise DownloadError(f"{remote.path}: got {size} bytes, expected {remote.size}")
    digest = sha256_of(part)
    if remote.sha256 and digest != remote.sha256.lower():
        part.unlink()
        raise DownloadError(
            f"{remote.path}: sha256 mismatch (expected {remote.sha256}, got {digest}); "
            "the partial file was deleted"
        )
    _etag_file(part).unlink(missing_ok=True)
    part.replace(dest)
    return digest
