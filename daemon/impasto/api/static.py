"""How the web UI's files are delivered: gzip, ETag revalidation, and HEAD on every path.

The files keep their names across versions (ES modules import each other by plain relative
names), so browsers may keep them but must revalidate each use (``no-cache``); an unchanged
file then costs a 304 with no body. Compression is the app-wide CompressionConfig, limited to
these files and the API docs: API answers are small JSON or PNG, and the event stream must
reach the browser as it is written.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import stat
from pathlib import Path
from typing import Any

from litestar import HttpMethod, Router, route
from litestar.config.compression import CompressionConfig
from litestar.exceptions import PermissionDeniedException
from litestar.file_system import BaseLocalFileSystem, FileSystemAdapter
from litestar.response import File
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, PathType, Receive, Scope, Send
from litestar.types.file_types import FileInfo

from impasto.api.etags import none_match
from impasto.api.security import PUBLIC

CACHE_CONTROL = b"no-cache"
# Requests whose answers stay uncompressed: everything but the UI and the docs' assets.
UNCOMPRESSED = ["^/api/", "^/sdapi/", "^/v1/"]
KEPT_ON_304 = {b"etag", b"cache-control", b"last-modified", b"vary"}


def compression() -> CompressionConfig:
    """gzip for the UI's files and the API docs (the rest is excluded, see UNCOMPRESSED)."""
    return CompressionConfig(backend="gzip", gzip_compress_level=6, exclude=UNCOMPRESSED)


def _header(scope: Scope, name: bytes) -> bytes:
    return next((value for key, value in scope["headers"] if key == name), b"")


def _typed(media_type: str) -> bytes:
    text = media_type.startswith("text/") or media_type.endswith(("javascript", "json", "+xml"))
    return f"{media_type}; charset=utf-8".encode() if text else media_type.encode()


def revalidated(app: ASGIApp) -> ASGIApp:
    """Adds Cache-Control to file answers and turns a matching If-None-Match into a 304."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        wanted = _header(scope, b"if-none-match").decode("latin-1")
        unchanged = False

        async def send_revalidated(message: Message) -> None:
            nonlocal unchanged
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"cache-control", CACHE_CONTROL)]
                if not any(k.lower() == b"content-type" for k, _ in headers):
                    # Litestar's HEAD answer for a file leaves out the type GET would send.
                    guessed, _ = mimetypes.guess_type(scope["path"])
                    if guessed:
                        headers.append((b"content-type", _typed(guessed)))
                etag = next((v for k, v in headers if k.lower() == b"etag"), None)
                if (
                    message["status"] == 200
                    and etag is not None
                    and none_match(wanted, etag.decode("latin-1"))
                ):
                    unchanged = True
                    kept = [(k, v) for k, v in headers if k.lower() in KEPT_ON_304]
                    message = {"type": "http.response.start", "status": 304, "headers": kept}
                else:
                    message = {**message, "headers": headers}
            elif unchanged and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app(scope, receive, send_revalidated)

    return middleware


def _unreadable() -> PermissionDeniedException:
    return PermissionDeniedException("the daemon may not read this file; check its permissions")


def _stat_readable(path: PathType) -> tuple[os.stat_result, bool]:
    """A path's stat, and whether the daemon may read it if it is a file (blocking)."""
    result = os.stat(path)
    return result, not stat.S_ISREG(result.st_mode) or os.access(path, os.R_OK)


class _Files(BaseLocalFileSystem):
    """The local files, where a path the OS cannot look up is a missing file, as it is: a name
    under a file (``/index.html/x``), one too long for the file system, a NUL (Litestar answers
    those with a 500); and a file the daemon may not read is a 403, as web servers answer it
    (Litestar's 401 would ask the client for credentials, which would change nothing).

    A file can be looked up but not read (mode 000): that is found here, before the answer
    starts, since opening it comes after the status and headers are sent.
    """

    async def info(self, path: PathType, **kwargs: Any) -> FileInfo:
        try:
            # One trip to a thread for both questions: the static files' hot path.
            result, readable = await asyncio.to_thread(_stat_readable, path)
        except FileNotFoundError:
            raise
        except PermissionError:
            raise _unreadable() from None
        except (OSError, ValueError):
            raise FileNotFoundError(str(path)) from None
        if not readable:
            raise _unreadable()
        return await FileSystemAdapter.parse_stat_result(path=path, result=result)


def static_routers(ui_dir: Path, docs_assets: Path) -> list[Router]:
    """The UI at ``/`` (index.html for ``/``, GET and HEAD) and the API docs' assets.

    All of them answer without a token (``PUBLIC``): the page asks for the token itself.
    """
    public = {PUBLIC: True}

    # Litestar's html_mode answers GET / only; this index answers HEAD / too.
    @route("/", http_method=[HttpMethod.GET, HttpMethod.HEAD], include_in_schema=False)
    async def index() -> File:
        return File(
            ui_dir / "index.html",
            filename="index.html",
            content_disposition_type="inline",
            file_system=_Files(),
        )

    docs = create_static_files_router(
        path="/schema-assets",
        directories=[docs_assets],
        file_system=_Files(),
        include_in_schema=False,
        middleware=[revalidated],
        opt=public,
    )
    ui = create_static_files_router(
        path="/",
        directories=[ui_dir],
        file_system=_Files(),
        include_in_schema=False,
        name="ui",
        middleware=[revalidated],
        opt=public,
    )
    index_router = Router(path="/", route_handlers=[index], middleware=[revalidated], opt=public)
    return [docs, index_router, ui]
