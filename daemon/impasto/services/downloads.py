"""Resumable HTTP downloads: Range + If-Range on a ``.part`` file, size limits, sha256 checks."""

from __future__ import annotations

import errno
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from impasto.services.egress import DownloadError as DownloadError
from impasto.services.egress import Egress, guarded_client
from impasto.services.safety import check_free_space

# httpx logs every request at INFO; a model is hundreds of requests the daemon log can skip.
logging.getLogger("httpx").setLevel(logging.WARNING)

FREE_SPACE_EVERY = 64 * 1024 * 1024  # bytes between free-space checks while downloading
RETRIES = 6  # failed tries in a row, none of which got the file further, before giving up
# Answers that say "try again": rate limited (429) or a server or gateway hiccup (5xx).
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After fails the install, saying how long


class InstallCancelled(Exception):
    """The install was cancelled (or the daemon is stopping) while it ran."""


class _TryAgain(Exception):
    """The server asked to retry (429 or 5xx), after ``delay`` seconds when it said."""

    def __init__(self, message: str, delay: float | None, *, restart: bool = False) -> None:
        super().__init__(message)
        self.delay = delay
        self.restart = restart  # the partial file was dropped: the next try starts from 0


@dataclass(frozen=True)
class RemoteFile:
    """One file to fetch: its URL and where it goes relative to the model folder."""

    url: str
    path: str
    size: int | None = None
    sha256: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # What a 401 or 403 means for this file and what to do (a hub file: the token, the licence)
    denied: str = ""
    on_hub: bool = True  # served by the hub endpoint (a mirror can stand in for it)


_URL_SECRETS = re.compile(r"(?P<scheme>https?://)(?:[^/@\s]*@)?(?P<rest>[^\s?#'\"]*)[?#][^\s'\"]*")
_URL_USERINFO = re.compile(r"(?P<scheme>https?://)[^/@\s]*@")


def redact_urls(text: str) -> str:
    """``text`` with each URL's login and query dropped: a signed CDN link, a mirror's
    ``user:password@`` or a site's ``?token=`` must not reach install records or the log."""
    text = _URL_SECRETS.sub(r"\g<scheme>\g<rest>", text)
    return _URL_USERINFO.sub(r"\g<scheme>", text)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: "Name or service not known", not three wrappers around it."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def network_problem(url: str, exc: BaseException, *, hub: bool = True) -> str:
    """Why ``url`` could not be reached, naming its host, and what the user can check (a
    hub mirror only where ``url`` is the hub's: another server's URL has no mirror)."""
    host = urlsplit(url).hostname or url
    cause = _root_cause(exc)
    reason = getattr(cause, "strerror", None) or str(cause).strip() or type(cause).__name__
    mirror = ", or point hf_endpoint / HF_ENDPOINT at a reachable mirror" if hub else ""
    return (
        f"cannot reach {host} ({reason}): check the network connection and any proxy "
        f"(HTTPS_PROXY){mirror}"
    )


def redirect_guard(url: str, what: str) -> Callable[[httpx.Request], None]:
    """An httpx request hook refusing a redirect from ``url`` to another scheme, or from a
    remote host to one naming this machine or its network (egress.Egress; a client from
    ``guarded_client`` also checks what names resolve to)."""
    return Egress(url, what).check_request


def retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if unsaid."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


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
    # The bytes as stored: Range offsets and Content-Length count those, not a gzip of them.
    headers = {**remote.headers, "Accept-Encoding": "identity"}
    etag_file = _etag_file(part)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if etag_file.exists():
            # If the file changed upstream the server sends it whole instead of a stale tail.
            headers["If-Range"] = etag_file.read_text()
    with client.stream("GET", remote.url, headers=headers) as response:
        status = response.status_code
        whole = response.headers.get("Content-Range", "").rpartition("/")[2]
        if status == 416 and offset and offset in (remote.size, _int(whole)):
            # All there already; a length that was announced wrongly fails the size check.
            return True
        if status == 416 and offset:
            # What is on disk is not a start of this file (longer, or another version): drop it.
            progress(-offset)
            part.unlink()
            etag_file.unlink(missing_ok=True)
            raise _TryAgain(f"{remote.path}: a stale partial file", 0.0, restart=True)
        if status in RETRY_STATUSES:
            raise _TryAgain(
                f"{remote.path}: HTTP {status} from {urlsplit(remote.url).hostname}",
                retry_after(response.headers.get("Retry-After")),
            )
        if status not in (200, 206):
            detail = f"HTTP {status}"
            if status in (401, 403):
                detail += f" ({remote.denied or 'the server refused the download'})"
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
            # As they arrive: bytes buffered towards a bigger chunk would be lost on a drop.
            for chunk in response.iter_bytes():
                if cancel.is_set():
                    raise InstallCancelled("cancelled")
                try:
                    out.write(chunk)
                except OSError as exc:
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    raise DownloadError(
                        f"{remote.path}: the disk filled up while downloading; free some "
                        "space or set temp_dir to a bigger disk, then install again"
                    ) from None
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
    if cancel.is_set():  # before any folder is made again in a staging area being deleted
        raise InstallCancelled("cancelled")
    if dest.exists():
        return sha256_of(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    drops = 0
    # The furthest the file got: a server that drops every try at the same place (or, without
    # Range, restarts it) makes no headway, and that counts as a failed try.
    furthest = part.stat().st_size if part.exists() else 0
    # The hub endpoint is the user's setting: a mirror there may sit on the local network.
    with guarded_client(remote.url, remote.path, timeout=timeout, trusted=remote.on_hub) as client:
        while True:
            if cancel.is_set():
                raise InstallCancelled("cancelled")
            error: Exception | None = None
            delay: float | None = None
            try:
                if _stream_once(client, remote, part, max_size, progress, cancel):
                    break
            except _TryAgain as exc:
                error, delay = exc, exc.delay
                furthest = 0 if exc.restart else furthest
            except httpx.UnsupportedProtocol as exc:
                raise DownloadError(f"{remote.path}: {exc}") from None
            except httpx.TooManyRedirects:
                raise DownloadError(
                    f"{remote.path}: too many redirects from {remote.url}"
                ) from None
            except httpx.TransportError as exc:
                error = exc
            size = part.stat().st_size if part.exists() else 0
            drops = 0 if size > furthest else drops + 1
            furthest = max(furthest, size)
            if drops >= RETRIES:
                if isinstance(error, _TryAgain):
                    raise DownloadError(f"{error}, {RETRIES} times in a row; try again later")
                why = (
                    network_problem(remote.url, error, hub=remote.on_hub)
                    if error
                    else "the connection closed early"
                )
                raise DownloadError(f"{remote.path}: {why}")
            if delay is not None and delay > MAX_RETRY_AFTER:
                raise DownloadError(
                    f"{error}: the server asks to wait {delay:.0f} s (Retry-After); "
                    "try the install again later"
                )
            if cancel.wait(min(0.2 * 2**drops, 5.0) if delay is None else delay):
                raise InstallCancelled("cancelled")
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
