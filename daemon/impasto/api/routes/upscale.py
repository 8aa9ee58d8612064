"""Upscale an image with any upscaler: the built-in resizes or an installed ONNX model."""

from __future__ import annotations

import asyncio

from litestar import Controller, Response, get, post
from litestar.params import JSONBody

from impasto.api.dependencies import AllServices
from impasto.api.limits import RATE_LIMITED
from impasto.services.upscalers import UpscalerService, upscale_request
from impasto.wire import UpscalerEntry, UpscaleRequest


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
        self, services: AllServices, data: JSONBody[UpscaleRequest]
    ) -> Response[bytes]:
        png, upscaler = await asyncio.to_thread(upscale_request, services, data)
        return Response(png, media_type="image/png", headers={"X-Impasto-Upscaler": upscaler})
