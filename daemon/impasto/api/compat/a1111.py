"""The AUTOMATIC1111 API under /sdapi/v1: generation, progress and interrupts via the queue."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from litestar import Controller, Router, get, post
from litestar.params import FromQuery

from impasto.api.compat.a1111_actions import A1111ActionsController
from impasto.api.compat.a1111_alwayson import check_alwayson_scripts
from impasto.api.compat.a1111_convert import echo, plan
from impasto.api.compat.a1111_extras import A1111ExtrasController
from impasto.api.compat.a1111_info import (
    A1111InfoController,
    check_kept_overrides,
    keep_overrides,
)
from impasto.api.compat.a1111_infotext import blaming_infotext, with_infotext
from impasto.api.compat.a1111_lists import A1111ListsController
from impasto.api.compat.a1111_processed import info_json, labelled, request_labels
from impasto.api.compat.a1111_schemas import (
    GenerationResponse,
    Img2ImgRequest,
    ProgressResponse,
    Txt2ImgRequest,
)
from impasto.api.compat.a1111_scripts import A1111ScriptsController, generate_with_script
from impasto.api.compat.errors import A1111_HANDLERS, CompatError
from impasto.api.compat.lenient import documented_body, lenient_convert
from impasto.api.dependencies import AllServices
from impasto.api.limits import RATE_LIMITED
from impasto.services import compat
from impasto.services.container import Services
from impasto.services.runner import job_plan

A1111_PREFIX = "/sdapi/v1"
BODY_NOTE = (
    "A1111's request fields (docs/compat.md), read as leniently as A1111 reads them: booleans "
    "and numeric strings in number fields, unknown fields ignored."
)
TXT2IMG_BODY = documented_body(Txt2ImgRequest, BODY_NOTE)
IMG2IMG_BODY = documented_body(Img2ImgRequest, BODY_NOTE)


async def _request(
    services: Services, data: dict[str, Any], schema: type[Txt2ImgRequest]
) -> Txt2ImgRequest:
    """The body as ``schema``: always-on scripts checked, ``infotext`` filling what it leaves."""
    is_img2img = schema is Img2ImgRequest
    check_alwayson_scripts(data, is_img2img)
    if data.get("infotext"):  # resolving its Model and Refiner reads the model list
        data = await asyncio.to_thread(with_infotext, services, data, is_img2img)
    req = lenient_convert(data, schema)
    if isinstance(req, Img2ImgRequest) and len(req.init_images or ()) > 1:
        # A1111 draws image i of the batch from init image i (the batch size becomes their
        # number); a job here has one init image: not a batch drawn from the first alone.
        message = (
            f"{len(req.init_images or ())} images sent; Impasto draws from one init image per "
            "request: send one request per image (batch_size and n_iter repeat it)"
        )
        raise CompatError(422, message, "init_images")
    return req


async def _generate(services: Services, req: Txt2ImgRequest) -> GenerationResponse:
    """Queue the request's jobs, wait for all of them, answer as A1111 does."""
    # Before the pictures are stored, so a refusal leaves nothing behind (encoding the
    # values to measure them is CPU work: in a thread).
    await asyncio.to_thread(check_kept_overrides, services, req)
    if req.script_name:
        return await generate_with_script(services, req)
    # Decoding and storing the init image and mask, and the model lookups: in a thread.
    task = await asyncio.to_thread(plan, services, req)
    await keep_overrides(services, req)
    job_ids = await compat.submit_all(services, task.requests)
    finished = await compat.await_all(services, job_ids)
    failed = [job for job in finished if job.status == "failed"]
    if failed:
        raise CompatError(500, f"generation failed: {failed[0].error}")
    # Interrupted or skipped jobs contribute no images, as in A1111 after an interrupt.
    # Reading the PNGs back is file I/O that grows with the batch: not on the event loop.
    images = await asyncio.to_thread(compat.result_images, services, finished)
    images = await asyncio.to_thread(labelled, images, request_labels(req, task))
    return GenerationResponse(
        images=[image.base64 for image in images] if req.send_images is not False else [],
        parameters=echo(req),
        info=await asyncio.to_thread(info_json, services, req, task, images, job_plan(finished[0])),
    )


class A1111GenerationController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @post(
        "/txt2img",
        status_code=200,
        summary="A1111 txt2img: queue, wait, return base64 PNGs",
        opt={RATE_LIMITED: True},
    )
    async def txt2img(
        self, services: AllServices, data: Annotated[dict[str, Any], TXT2IMG_BODY]
    ) -> GenerationResponse:
        with blaming_infotext(data, is_img2img=False):
            return await _generate(services, await _request(services, data, Txt2ImgRequest))

    @post(
        "/img2img",
        status_code=200,
        summary="A1111 img2img, with an optional inpainting mask",
        opt={RATE_LIMITED: True},
    )
    async def img2img(
        self, services: AllServices, data: Annotated[dict[str, Any], IMG2IMG_BODY]
    ) -> GenerationResponse:
        with blaming_infotext(data, is_img2img=True):
            return await _generate(services, await _request(services, data, Img2ImgRequest))

    @get("/progress", summary="The running task's progress, ETA and latest preview")
    async def progress(
        self, services: AllServices, skip_current_image: FromQuery[bool] = False
    ) -> ProgressResponse:
        snap = compat.progress(services)
        state = compat.compat_state(services)
        job_state: dict[str, Any] = {
            "skipped": state.skipped,
            "interrupted": state.interrupted,
            "stopping_generation": False,
            "job": snap.job_id or "",
            "job_count": snap.job_count,
            "job_timestamp": state.job_timestamp,  # the last one stays when idle, as in A1111
            "job_no": snap.job_no,
            "sampling_step": snap.step,
            "sampling_steps": snap.total,
        }
        image = None
        if snap.preview and not skip_current_image:
            image = await asyncio.to_thread(compat.png_base64, snap.preview)
        return ProgressResponse(
            progress=round(snap.fraction, 4),
            eta_relative=round(snap.eta(), 3),
            state=job_state,
            current_image=image,
            textinfo=None,
            current_task=snap.job_id,
        )

    @post("/interrupt", status_code=200, summary="Cancel the running job and the rest of its task")
    async def interrupt(self, services: AllServices) -> dict[str, Any]:
        await compat.interrupt(services, whole_task=True)
        return {}

    @post("/skip", status_code=200, summary="Cancel the running job; its task goes on")
    async def skip(self, services: AllServices) -> None:
        await compat.interrupt(services, whole_task=False)


def a1111_router() -> Router:
    """A fresh router for /sdapi/v1 with A1111-style error bodies."""
    return Router(
        path=A1111_PREFIX,
        route_handlers=[
            A1111GenerationController,
            A1111InfoController,
            A1111ScriptsController,
            A1111ExtrasController,
            A1111ListsController,
            A1111ActionsController,
        ],
        exception_handlers=A1111_HANDLERS,
    )
