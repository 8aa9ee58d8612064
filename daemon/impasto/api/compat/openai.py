"""The OpenAI images API under /v1: generations, edits, variations and models, over the queue."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, get_args

import msgspec
from litestar import Controller, Request, Response, Router, get, post
from litestar.enums import RequestEncodingType
from litestar.params import FromPath, JSONBody

from impasto.api.compat.errors import OPENAI_HANDLERS, OPENAI_PREFIX, CompatError
from impasto.api.compat.lenient import documented_body
from impasto.api.compat.openai_requests import (
    edit_request,
    form_request,
    impasto_request,
    read_image,
    variation_request,
)
from impasto.api.compat.openai_schemas import (
    RESPONSE_SIZES,
    ImageGenerationRequest,
    ImagesResponse,
    ImageStreamEvent,
    ListModelsResponse,
    Model,
    ResponseFormat,
    StreamEventType,
)
from impasto.api.compat.openai_schemas import Image as ImageData
from impasto.api.compat.openai_stream import StreamKind, encoded, stream_answer
from impasto.api.dependencies import AllServices
from impasto.api.disconnect import done_before_hang_up
from impasto.api.limits import RATE_LIMITED
from impasto.api.openapi_doc import ALSO_ANSWERS, EventStream
from impasto.api.security import url_signature
from impasto.services import compat
from impasto.services.container import Services
from impasto.services.runner import job_plan
from impasto.wire import GenerateRequest

FORM_NOTE = "multipart/form-data, as OpenAI's: the image file(s) and the generation fields"
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = get_args(ResponseFormat)
STREAMS = (EventStream((*get_args(StreamEventType), "error"), (ImageStreamEvent, "OpenAIError")),)
STREAM_NOTE = (
    "With stream true the answer is server-sent events (text/event-stream): up to "
    "partial_images (0-3) previews as <kind>.partial_image, then each image as "
    "<kind>.completed (kind image_generation or image_edit), each event's data an "
    "ImageStreamEvent; an error event if the job fails or is cancelled."
)


def _response_formats(req: ImageGenerationRequest) -> tuple[str, ...]:
    """What each image carries: what ``response_format`` asks; without it, both ``b64_json``
    (gpt-image-1's only answer) and ``url`` (the default of dall-e-2 and 3, whose clients read
    it), unless the image is re-encoded from the PNG the URL serves."""
    if req.response_format:
        return (req.response_format,)
    return RESPONSE_FORMATS if (req.output_format or "png") == "png" else ("b64_json",)


def _image_url(request: Request[Any, Any, Any], services: Services, job_id: str, index: int) -> str:
    base = str(request.base_url).rstrip("/")
    path = f"/api/v1/images/{job_id}/{index}"
    # OpenAI clients fetch the URL without their API key, and chat front ends show it to
    # whoever reads the chat: it carries a signature that opens this image only, never the
    # token (which would open the whole API).
    token = services.settings.token
    return f"{base}{path}?sig={url_signature(token, path)}" if token else f"{base}{path}"


async def _awaited_while_connected(
    request: Request[Any, Any, Any], services: Services, job_ids: list[str]
) -> list[Any]:
    """The finished jobs; cancelled if the client goes away first. The openai client sends a
    request again when its timeout (600 s by default) passes: the first one's job would run on
    for nobody, ahead of the new one."""
    waiting = asyncio.ensure_future(compat.await_all(services, job_ids))
    if await done_before_hang_up(request, waiting):
        return waiting.result()
    waiting.cancel()
    await compat.cancel_unfinished(services, job_ids)
    raise CompatError(499, "the client closed the connection; its job was cancelled")


async def _run(
    request: Request[Any, Any, Any],
    services: Services,
    fields: GenerateRequest,
    req: ImageGenerationRequest,
    kind: StreamKind = "image_generation",
) -> Response[Any]:
    """Queue the job; answer its images when it is done, or stream them with ``stream``."""
    job_ids = await compat.submit_all(services, [fields])
    if req.stream:
        return stream_answer(services, job_ids, req, kind)
    jobs = await _awaited_while_connected(request, services, job_ids)
    job = jobs[0]
    if job.status == "failed":
        raise CompatError(500, f"generation failed: {job.error}")
    if job.status != "completed":
        raise CompatError(409, f"the job was {job.status} before it finished")
    images = await asyncio.to_thread(compat.result_images, services, jobs)
    plan = job_plan(job)
    output_format = req.output_format or "png"
    formats = _response_formats(req)
    data = []
    for image in images:
        item = ImageData()
        if "b64_json" in formats:
            compression = req.output_compression
            item.b64_json = await asyncio.to_thread(encoded, image, output_format, compression)
        if "url" in formats:
            item.url = _image_url(request, services, image.job_id, image.index)
        data.append(item)
    size = f"{plan.width}x{plan.height}"
    answer = ImagesResponse(
        created=int(time.time()),
        data=data,
        output_format=output_format,
        size=size if size in RESPONSE_SIZES else msgspec.UNSET,
    )
    return Response(answer)


def _listed(services: Services, model_id: str) -> Model:
    """An installed model as OpenAI describes one (``created``: when the daemon started)."""
    return Model(id=model_id, object="model", created=int(services.started_at), owned_by="impasto")


EDIT_FORM = documented_body(
    ImageGenerationRequest,
    FORM_NOTE,
    media_type=RequestEncodingType.MULTI_PART,
    files=("image", "mask"),
    required=("image", "prompt"),
)
VARIATION_FORM = documented_body(
    ImageGenerationRequest,
    FORM_NOTE,
    media_type=RequestEncodingType.MULTI_PART,
    files=("image",),
    required=("image",),
)


class OpenAIImagesController(Controller):
    path = "/"
    tags = ("openai",)

    @post(
        "/images/generations",
        status_code=200,
        summary="OpenAI images.generate",
        description=STREAM_NOTE,
        opt={RATE_LIMITED: True, ALSO_ANSWERS: STREAMS},
    )
    async def generations(
        self,
        services: AllServices,
        request: Request[Any, Any, Any],
        data: JSONBody[ImageGenerationRequest],
    ) -> Response[ImagesResponse]:
        # Finding the model by name may list the models folder: in a thread.
        fields = await asyncio.to_thread(impasto_request, services, data)
        return await _run(request, services, fields, data)

    @post(
        "/images/edits",
        status_code=200,
        summary="OpenAI images.edit: inpaint an image",
        description=STREAM_NOTE,
        opt={RATE_LIMITED: True, ALSO_ANSWERS: STREAMS},
    )
    async def edits(
        self,
        services: AllServices,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], EDIT_FORM],
    ) -> Response[ImagesResponse]:
        req = form_request(data)
        image = await read_image(services, data.get("image") or data.get("image[]"), "image")
        mask_image = None
        if data.get("mask") is not None:
            mask_image = await read_image(services, data.get("mask"), "mask")
        fields = await asyncio.to_thread(edit_request, services, req, image, mask_image)
        return await _run(request, services, fields, req, "image_edit")

    @post(
        "/images/variations",
        status_code=200,
        summary="OpenAI images.create_variation: an img2img of the image",
        opt={RATE_LIMITED: True},
    )
    async def variations(
        self,
        services: AllServices,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], VARIATION_FORM],
    ) -> Response[ImagesResponse]:
        req = form_request(data, variation=True)
        image = await read_image(services, data.get("image"), "image")
        fields = await asyncio.to_thread(variation_request, services, req, image)
        return await _run(request, services, fields, req)

    @get("/models", summary="Installed models, OpenAI-style")
    async def models(self, services: AllServices) -> ListModelsResponse:
        models = await asyncio.to_thread(services.catalog.list)
        return ListModelsResponse(object="list", data=[_listed(services, m.id) for m in models])

    @get("/models/{model_id:str}", summary="One installed model, OpenAI-style")
    async def model(self, services: AllServices, model_id: FromPath[str]) -> Model:
        # An OpenAI name (dall-e-3) is not a model here: the listing does not have it either.
        found = await asyncio.to_thread(services.catalog.get, model_id)
        if found is None:
            message = f"the model {model_id!r} does not exist"
            raise CompatError(404, message, "model", "model_not_found")
        return _listed(services, found.id)


def openai_router() -> Router:
    """A fresh router for /v1 with OpenAI-style error bodies."""
    return Router(
        path=OPENAI_PREFIX,
        route_handlers=[OpenAIImagesController],
        exception_handlers=OPENAI_HANDLERS,
    )
