"""A1111's upscaler listing and extras routes: ``/upscalers``, ``/extra-single-image``,
``/extra-batch-images``, run by the upscaler service in a thread.

Facts from A1111 (modules/api/models.py, scripts/postprocessing_upscale.py): resize mode 0
scales by ``upscaling_resize``; mode 1 scales by the larger ratio to ``upscaling_resize_w`` x
``_h`` and, with ``upscaling_crop``, centres that on a canvas of exactly that size; upscaler 2 is
blended in at ``extras_upscaler_2_visibility``; the image's PNG text passes through, with a
``postprocessing`` chunk saying what was done. Face restoration (GFPGAN, CodeFormer) does not
exist in Impasto: a visibility above 0 is a 422 naming the field and its one allowed value, in
A1111's validation shape (a value this server cannot honour, not a route it lacks).
"""

from __future__ import annotations

import asyncio
import base64
import html
import threading
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get, post
from msgspec import Meta

from impasto.api.compat.common import decode_base64_image
from impasto.api.compat.errors import CompatError
from impasto.api.compat.lenient import documented_body, lenient_convert
from impasto.api.dependencies import AllServices
from impasto.api.limits import RATE_LIMITED
from impasto.api.routes.upscale import stopped_with_client
from impasto.services.container import Services
from impasto.services.upscalers import (
    UpscalerService,
    UpscaleSpec,
    infotext,
    png_with_info,
)
from impasto.wire import Schema

Visibility = Annotated[float, Meta(ge=0, le=1)]
A1111_BUILTIN_SCALE = 4.0
"""A1111 lists None, Lanczos and Nearest with its UpscalerData default scale, 4."""


class UpscalerItem(Schema):
    """A1111's UpscalerItem; ``model_path`` is never a local path (null)."""

    name: str
    model_name: str | None = None
    model_path: str | None = None
    model_url: str | None = None
    scale: float | None = None


class ExtrasBaseRequest(Schema):
    """A1111's ExtrasBaseRequest, with its defaults."""

    resize_mode: Literal[0, 1] = 0
    show_extras_results: bool = True
    gfpgan_visibility: Visibility = 0.0
    codeformer_visibility: Visibility = 0.0
    codeformer_weight: Visibility = 0.0
    # A1111's UI bounds: up to 8x, sides up to 8192.
    upscaling_resize: Annotated[float, Meta(ge=1, le=8)] = 2.0
    upscaling_resize_w: Annotated[int, Meta(ge=1, le=8192)] = 512
    upscaling_resize_h: Annotated[int, Meta(ge=1, le=8192)] = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: Visibility = 0.0
    upscale_first: bool = False


class ExtrasSingleImageRequest(ExtrasBaseRequest):
    image: str = ""


class FileData(Schema):
    data: str
    name: str = ""


class ExtrasBatchImagesRequest(ExtrasBaseRequest, kw_only=True):
    # Required, as in A1111: a misspelt list is a 422 naming it, not an empty answer.
    imageList: list[FileData]


BODY_NOTE = (
    "A1111's extras fields, read as leniently as A1111 reads them: booleans and numeric strings "
    "in number fields, numbers in text fields, unknown fields ignored."
)
SINGLE_BODY = documented_body(ExtrasSingleImageRequest, BODY_NOTE)
BATCH_BODY = documented_body(ExtrasBatchImagesRequest, BODY_NOTE)


class ExtrasSingleImageResponse(Schema):
    html_info: str
    image: str | None = None


class ExtrasBatchImagesResponse(Schema):
    html_info: str
    images: list[str]


def _spec(req: ExtrasBaseRequest) -> UpscaleSpec:
    if req.gfpgan_visibility > 0 or req.codeformer_visibility > 0:
        field = "gfpgan_visibility" if req.gfpgan_visibility > 0 else "codeformer_visibility"
        raise CompatError(422, "must be 0: face restoration is not available in Impasto", field)
    to_size = req.resize_mode == 1
    return UpscaleSpec(
        upscaler=req.upscaler_1,
        scale=req.upscaling_resize,
        width=req.upscaling_resize_w if to_size else None,
        height=req.upscaling_resize_h if to_size else None,
        crop=req.upscaling_crop,
        upscaler2=req.upscaler_2,
        visibility2=req.extras_upscaler_2_visibility,
        scale_field="upscaling_resize_w" if to_size else "upscaling_resize",
    )


def _html(info_text: str) -> str:
    """A1111's plaintext_to_html of the postprocessing text."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in info_text.split("\n")) + "</p>"


def run_extras(
    services: Services,
    req: ExtrasBaseRequest,
    images: list[tuple[str, str]],
    stop: threading.Event | None = None,
) -> tuple[list[str], str]:
    """Decode, upscale and re-encode each (field, base64) image; ``stop`` set ends it before
    the next image or model tile (UpscaleCancelled). Blocking: call it in a thread (through
    stopped_with_client, which holds an upscale slot)."""
    upscalers = UpscalerService(services.catalog.models_dir, stop)
    encoded, text = [], ""
    for field, value in images:
        upscalers.check_stop()
        source = decode_base64_image(services, value, field)
        spec = _spec(req)
        result = upscalers.upscale(source, spec)
        png = png_with_info(result, source, spec.info)
        encoded.append(base64.b64encode(png).decode("ascii"))
        text = infotext(spec.info) or text
    return encoded, _html(text)


class A1111ExtrasController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @get("/upscalers", summary="None, Lanczos, Nearest and each installed ONNX upscaler")
    async def upscalers(self, services: AllServices) -> list[UpscalerItem]:
        found = await asyncio.to_thread(UpscalerService(services.catalog.models_dir).available)
        return [
            UpscalerItem(
                name=info.label,
                model_name=info.id if info.kind == "model" else None,
                scale=info.scale if info.kind == "model" else A1111_BUILTIN_SCALE,
            )
            for info in found
        ]

    @post(
        "/extra-single-image",
        status_code=200,
        summary="Upscale one image (A1111 extras)",
        opt={RATE_LIMITED: True},
    )
    async def extra_single_image(
        self,
        services: AllServices,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], SINGLE_BODY],
    ) -> ExtrasSingleImageResponse:
        req = lenient_convert(data, ExtrasSingleImageRequest)
        if not req.image:
            raise CompatError(422, "send the image as base64 in image", "image")
        pairs = [("image", req.image)]
        images, info = await stopped_with_client(
            request, lambda stop: run_extras(services, req, pairs, stop)
        )
        return ExtrasSingleImageResponse(html_info=info, image=images[0])

    @post(
        "/extra-batch-images",
        status_code=200,
        summary="Upscale several images (A1111 extras)",
        opt={RATE_LIMITED: True},
    )
    async def extra_batch_images(
        self,
        services: AllServices,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], BATCH_BODY],
    ) -> ExtrasBatchImagesResponse:
        req = lenient_convert(data, ExtrasBatchImagesRequest)
        pairs = [(f"imageList[{i}].data", item.data) for i, item in enumerate(req.imageList)]
        images, info = await stopped_with_client(
            request, lambda stop: run_extras(services, req, pairs, stop)
        )
        return ExtrasBatchImagesResponse(html_info=info, images=images)
