"""AUTOMATIC1111's selectable scripts on txt2img/img2img, and the two routes that list them.

The scripts themselves (services/scripts) expand a request into ordinary queued jobs; this
module picks the script, reads ``script_args``, and answers with A1111's response.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from litestar import Controller, get

from impasto.api.compat.a1111_alwayson import BUILT_IN
from impasto.api.compat.a1111_convert import echo, hires_scheduler, plan
from impasto.api.compat.a1111_info import keep_overrides
from impasto.api.compat.a1111_processed import info_json, labelled, request_labels
from impasto.api.compat.a1111_schemas import (
    GenerationResponse,
    Img2ImgRequest,
    ScriptInfo,
    ScriptsList,
    Txt2ImgRequest,
)
from impasto.api.compat.a1111_schemas import ScriptArg as ScriptArgInfo
from impasto.api.compat.a1111_settings import background_setting, churn_values, run_settings
from impasto.api.compat.common import decode_base64_image, upload
from impasto.api.compat.errors import CompatError
from impasto.api.compat.samplers_map import to_impasto
from impasto.api.dependencies import AllServices
from impasto.formats.pixels import flattened
from impasto.services import compat
from impasto.services.container import Services
from impasto.services.errors import ServiceError
from impasto.services.runner import job_plan
from impasto.services.scripts.base import ScriptArg, ScriptContext, ScriptFailed, parse_args
from impasto.services.scripts.registry import find_script, scripts_for
from impasto.services.upscalers import UpscalerService
from impasto.wire import GenerateRequest


async def generate_with_script(services: Services, req: Txt2ImgRequest) -> GenerationResponse:
    """Run ``req.script_name`` over the request; answer as A1111's txt2img/img2img do."""
    is_img2img = isinstance(req, Img2ImgRequest)
    script = find_script(req.script_name or "", is_img2img)
    if script is None:
        # A1111's script_name_to_index: 422 with its HTTPException body.
        raise CompatError(422, f"Script '{req.script_name}' not found")
    args = parse_args(script.arguments(is_img2img), req.script_args)
    plain = msgspec.structs.replace(req, script_name=None, script_args=None)
    task = await asyncio.to_thread(plan, services, plain)
    await keep_overrides(services, req)
    jobs: list[Any] = []

    async def run_jobs(requests: list[GenerateRequest]) -> list[Any]:
        job_ids = await compat.submit_all(services, requests)
        finished = await compat.await_all(services, job_ids)
        jobs.extend(finished)
        return finished

    source: list[str | None] = []

    async def source_image() -> str | None:
        if not source:
            source.append(await asyncio.to_thread(_original_init_image, services, req))
        return source[0]

    def sampler_names(name: str, hires: bool = False) -> tuple[str, str]:
        # The request's scheduler applies to a sampler a script names, as in A1111.
        scheduler = hires_scheduler(req) if hires else req.scheduler
        choice = to_impasto(name, scheduler)  # UnknownSamplerError is a ValueError
        return choice.sampler, choice.schedule

    churn = await asyncio.to_thread(churn_values, services, req)
    settings = await asyncio.to_thread(run_settings, services, req)
    ctx = ScriptContext(
        services, is_img2img, task.requests, sampler_names, run_jobs, source_image, churn, settings
    )
    try:
        output = await script.run(ctx, args)
    except ScriptFailed as exc:
        raise CompatError(500, str(exc)) from None
    except (ServiceError, CompatError):
        if not jobs:  # refused before any job ran: the pictures it sent are not kept
            await asyncio.to_thread(compat.discard_pictures, services, task.requests, source)
        raise
    pictures = await asyncio.to_thread(labelled, output.images, request_labels(plain, task))
    text = await asyncio.to_thread(info_json, services, plain, task, pictures, job_plan(jobs[0]))
    info = json.loads(text)
    info["all_prompts"] = output.prompts or [task.prompt]
    info["index_of_first_image"] = output.index_of_first_image
    info["extra_generation_params"].update(output.extra)
    parameters = echo(req)
    images = [image.base64 for image in pictures] if req.send_images is not False else []
    return GenerationResponse(
        images=images, parameters=parameters, info=json.dumps(info, ensure_ascii=False)
    )


def _original_init_image(services: Services, req: Txt2ImgRequest) -> str | None:
    """The first init image as sent, unresized, stored as an upload (blocking)."""
    images = req.init_images if isinstance(req, Img2ImgRequest) else None
    if not images:
        return None
    image = decode_base64_image(services, images[0], "init_images")
    return upload(services, flattened(image, background_setting(services, req)))


def _script_info(services: Services, is_img2img: bool) -> list[ScriptInfo]:
    """Every script of a tab with its arguments; reads the upscalers folder (blocking)."""
    upscalers = [info.label for info in UpscalerService(services.catalog.models_dir).names()]
    return [
        ScriptInfo(
            name=script.title.lower(),
            is_alwayson=False,
            is_img2img=is_img2img,
            args=[_arg_info(arg, upscalers) for arg in script.arguments(is_img2img)],
        )
        for script in scripts_for(is_img2img)
    ] + [script.info(is_img2img) for script in BUILT_IN.values()]


def _arg_info(arg: ScriptArg, upscalers: list[str]) -> ScriptArgInfo:
    info = ScriptArgInfo(**arg.info())
    if arg.kind == "upscaler":
        info.choices = upscalers
    return info


class A1111ScriptsController(Controller):
    path = "/"
    tags = ("automatic1111",)

    @get("/scripts", summary="The selectable scripts of each tab, by A1111's lower-case names")
    async def scripts(self) -> ScriptsList:
        return ScriptsList(
            txt2img=[s.title.lower() for s in scripts_for(False)],
            img2img=[s.title.lower() for s in scripts_for(True)],
        )

    @get(
        "/script-info", summary="Each script's arguments, in script_args order (A1111's ScriptInfo)"
    )
    async def script_info(self, services: AllServices) -> list[ScriptInfo]:
        def both() -> list[ScriptInfo]:
            return _script_info(services, False) + _script_info(services, True)

        return await asyncio.to_thread(both)
