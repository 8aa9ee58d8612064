"""OpenAI's image encodings, and gpt-image-1's streamed answer (``stream: true``).

A streamed generation or edit answers with server-sent events: up to ``partial_images`` (0-3)
of the job's live previews as ``<kind>.partial_image``, then each image as ``<kind>.completed``,
where the kind is ``image_generation`` or ``image_edit``. A job that fails or is cancelled ends
the stream with an ``error`` event, whose data is an OpenAI error body.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator
from typing import Literal

import msgspec
from litestar.background_tasks import BackgroundTask
from litestar.response import ServerSentEvent, ServerSentEventMessage
from PIL import Image

from impasto.api.compat.openai_schemas import ImageGenerationRequest, ImageStreamEvent
from impasto.services import compat
from impasto.services.container import Services
from impasto.services.runner import job_plan

StreamKind = Literal["image_generation", "image_edit"]


def encode(image: Image.Image, output_format: str, compression: int | None) -> str:
    """``image`` as base64 in ``output_format`` (blocking)."""
    out = io.BytesIO()
    quality = 100 if compression is None else compression
    image.convert("RGB").save(out, output_format.upper(), quality=quality)  # PIL's names
    return base64.b64encode(out.getvalue()).decode("ascii")


def encoded(image: compat.ResultImage, output_format: str, compression: int | None) -> str:
    """A result as base64 in ``output_format``: the stored PNG itself (its metadata kept), or
    re-encoded (blocking)."""
    if output_format == "png":
        return image.base64
    with Image.open(io.BytesIO(image.png)) as decoded:
        return encode(decoded, output_format, compression)


def _partial(
    jpeg: bytes, size: tuple[int, int], output_format: str, compression: int | None
) -> str:
    """A live preview (a small JPEG) at the image's size in its format (blocking)."""
    with Image.open(io.BytesIO(jpeg)) as preview:
        return encode(preview.resize(size, Image.Resampling.BILINEAR), output_format, compression)


def _message(type_: str, b64: str, fields: dict[str, str], **extra: int) -> ServerSentEventMessage:
    """One image event; ``fields`` are what every event of the answer says alike."""
    body = {"type": type_, "b64_json": b64, "created_at": int(time.time()), **fields, **extra}
    event = msgspec.convert(body, ImageStreamEvent)
    return ServerSentEventMessage(data=msgspec.json.encode(event).decode(), event=event.type)


# Cancellations of streams whose client went away, held until done (the loop keeps only weak
# references to tasks).
_CANCELLING: set[asyncio.Task[None]] = set()


def _cancel_soon(services: Services, job_ids: list[str]) -> None:
    """Cancel the job of a stream that ended unanswered: its client went away, as a chat front
    end's stop button closes it. In a task of its own: the stream's scope is cancelled by
    then, so nothing can be awaited in it."""
    task = asyncio.ensure_future(compat.cancel_unfinished(services, job_ids))
    _CANCELLING.add(task)
    task.add_done_callback(_CANCELLING.discard)


def stream_answer(
    services: Services, job_ids: list[str], req: ImageGenerationRequest, kind: StreamKind
) -> ServerSentEvent:
    """The server-sent events of a queued job (``job_ids``, one job, as compat.submit_all
    returns it)."""
    job_id = job_ids[0]
    plan = job_plan(services.jobs.get(job_id))
    size = (plan.width, plan.height)
    output_format = req.output_format or "png"
    fields = {
        "size": f"{plan.width}x{plan.height}",
        "quality": req.quality or "auto",
        "background": req.background or "auto",
        "output_format": output_format,
    }

    answered = False

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        nonlocal answered
        try:
            index = 0
            previews = compat.spread_previews(services, job_id, req.partial_images or 0)
            async for preview in previews:
                if preview is None:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
                    continue
                b64 = await asyncio.to_thread(
                    _partial, preview, size, output_format, req.output_compression
                )
                yield _message(f"{kind}.partial_image", b64, fields, partial_image_index=index)
                index += 1
            job = services.jobs.get(job_id)
            if job.status != "completed":
                reason = f"generation failed: {job.error}" if job.status == "failed" else None
                message = reason or f"the job was {job.status} before it finished"
                error = {"message": message, "type": "server_error", "param": None, "code": None}
                body = msgspec.json.encode({"type": "error", "error": error}).decode()
                answered = True
                yield ServerSentEventMessage(data=body, event="error")
                return
            images = await asyncio.to_thread(compat.result_images, services, [job])
            for image in images:
                b64 = await asyncio.to_thread(encoded, image, output_format, req.output_compression)
                yield _message(f"{kind}.completed", b64, fields)
            answered = True
        finally:
            if not answered:
                _cancel_soon(services, job_ids)
            compat.compat_state(services).forget(job_ids)

    async def unanswered() -> None:
        # After the response, however it ended: a client gone before the first event leaves
        # ``messages`` unstarted, so its ``finally`` never runs.
        if not answered:
            await compat.cancel_unfinished(services, job_ids)

    return ServerSentEvent(
        messages(),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(unanswered),
    )
