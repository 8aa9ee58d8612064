"""Upscale an image with any upscaler: the built-in resizes or an installed ONNX model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from impasto.api.dependencies import AllServices
from impasto.api.disconnect import done_before_hang_up
from impasto.api.limits import RATE_LIMITED
from impasto.services.upscalers import UpscalerService, upscale_request, waiting_upscale_slot
from impasto.wire import UpscalerEntry, UpscaleRequest

T = TypeVar("T")


async def stopped_with_client(
    request: Request[Any, Any, Any], work: Callable[[threading.Event], T]
) -> T:
    """``work(stop)`` in a thread, in one of the upscale slots (waited for, then a 429);
    ``stop`` is set when the client goes away (a timeout, an abort) or the handler is
    cancelled, so an upscale nobody waits for ends at its next model tile and frees its slot
    (UpscaleCancelled), rather than running to the end."""
    async with waiting_upscale_slot():
        stop = threading.Event()
        running = asyncio.ensure_future(asyncio.to_thread(work, stop))
        try:
            await done_before_hang_up(request, running)
        finally:
            if not running.done():
                stop.set()
        return await running


class UpscaleController(Controller):
    path = "/"
    tags = ["upscale"]

    @get("/upscalers", summary="Upscalers: none, lanczos, nearest and installed ONNX models")
    async def upscalers(self, services: AllServices) -> list[UpscalerEntry]:
        found = await asyncio.to_thread(UpscalerService(services.catalog.models_dir).available)
        return [UpscalerEntry(id=u.id, name=u.label, kind=u.kind, scale=u.scale) for u in found]

    @post(
        "/upscale",
        status_code=200,
        summary="Upscale an image; answers the PNG",
        opt={RATE_LIMITED: True},
        media_type="image/png",
    )
    async def upscale(
        self, services: AllServices, request: Request[Any, Any, Any], data: JSONBody[UpscaleRequest]
    ) -> Response[bytes]:
        png, upscaler = await stopped_with_client(
            request, lambda stop: upscale_request(services, data, stop)
        )
        return Response(png, media_type="image/png", headers={"X-Impasto-Upscaler": upscaler})
