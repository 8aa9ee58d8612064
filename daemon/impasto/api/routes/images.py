"""Generated images out, init images and masks in."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, MultipartBody
from PIL import Image

from impasto.api.bodies import read_file_part
from impasto.api.dependencies import Jobs, Uploads
from impasto.api.etags import none_match
from impasto.api.openapi_doc import ALSO_ANSWERS
from impasto.api.params import ranged
from impasto.api.security import SIGNED_URL
from impasto.services.errors import NotFoundError
from impasto.services.images import image_gone
from impasto.wire import ThumbSize, UploadedImage

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def _etag(path_stat: Any, extra: str) -> str:
    raw = f"{path_stat.st_mtime_ns}-{path_stat.st_size}-{extra}".encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


def _located(jobs: Any, job_id: str, index: int) -> tuple[Path, os.stat_result]:
    """An output's file and its stat (blocking: a database read and file lookups)."""
    path = jobs.image_path(job_id, index)
    return path, path.stat()


def _thumbnail(path: Any, size: int) -> bytes:
    with Image.open(path) as img:
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=82)
    return buf.getvalue()


def _disposition(path: Path, thumb: int | None) -> str:
    """``inline`` with the output's file name (``<job>-<index>.png``; a thumbnail's says so and
    is a JPEG), kept to letters, digits, ``.``, ``-`` and ``_`` so no header quoting applies."""
    name = f"{path.stem}-thumb{thumb}.jpg" if thumb else path.name
    return f'inline; filename="{_UNSAFE_NAME.sub("_", name)}"'


@dataclass
class UploadForm:
    """The upload's form: the image in a field named ``file``. The OpenAPI document names the
    field from here, so a client built from it sends what the route reads."""

    file: UploadFile


class ImagesController(Controller):
    path = "/images"
    tags = ["images"]

    @get(
        "/{job_id:str}/{index:int}",
        summary="A generated PNG (or a JPEG thumbnail)",
        media_type="image/png",
        # OpenAI's image ``url`` (api/compat/openai.py) opens this one image with a ``sig``.
        opt={ALSO_ANSWERS: ("image/jpeg",), SIGNED_URL: True},
    )
    async def image(
        self,
        jobs: Jobs,
        request: Request[Any, Any, Any],
        job_id: FromPath[str],
        index: FromPath[int],
        thumb: Annotated[int | None, ranged(ThumbSize)] = None,
    ) -> Response[bytes]:
        # Finding, reading and scaling a PNG is file I/O and CPU work: not on the event loop.
        try:
            path, stat = await asyncio.to_thread(_located, jobs, job_id, index)
            etag = _etag(stat, str(thumb))
            headers = {
                "ETag": etag,
                "Cache-Control": "private, max-age=31536000, immutable",
                # "Save as" and `curl -OJ` get the file's own name, not the index ("0").
                "Content-Disposition": _disposition(path, thumb),
            }
            if none_match(request.headers.get("if-none-match", ""), etag):
                return Response(b"", status_code=304, headers=headers)
            if thumb:
                body = await asyncio.to_thread(_thumbnail, path, thumb)
                return Response(body, media_type="image/jpeg", headers=headers)
            body = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            # Deleted between the lookup and the read (a DELETE of the job, a user's rm).
            raise NotFoundError(image_gone(job_id, index, Path(exc.filename or "").name)) from None
        except PermissionError:
            # The output folder's permissions, changed under the daemon: no credential helps.
            detail = "the daemon may not read this image; check the output folder's permissions"
            raise PermissionDeniedException(detail) from None
        return Response(body, media_type="image/png", headers=headers)

    @post("/", status_code=201, summary="Upload an init image or mask")
    async def upload(
        self,
        uploads: Uploads,
        data: MultipartBody[UploadForm],
    ) -> UploadedImage:
        content = await read_file_part(data.file, uploads.max_bytes, "file")
        upload_id, image = await asyncio.to_thread(uploads.save_bytes, content, "file")
        return UploadedImage(id=upload_id, width=image.width, height=image.height, mode=image.mode)
