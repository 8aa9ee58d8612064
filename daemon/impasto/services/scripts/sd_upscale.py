"""AUTOMATIC1111's "SD upscale" (img2img): upscale the init image, then img2img it in
overlapping tiles of the request's width x height.

Arguments, in A1111's order: an info text (no label; its value is ignored), Tile overlap,
Upscaler (an index into ``/sdapi/v1/upscalers``, or its name), Scale Factor. The upscale and
the tiles run in the worker as one native job (``sd_upscale``): queued, with progress over
every tile, cancelled by ``/interrupt`` or ``/skip``. It works on the image as the client sent
it, not the tab's resized copy. Each iteration (n_iter) is one job with seed + n, as in A1111;
a batch size above 1 only batches A1111's tiles, so each job runs its tiles one at a time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from impasto.engine.noise import offset_seed
from impasto.services.errors import FieldError
from impasto.services.scripts.base import (
    ScriptArg,
    ScriptContext,
    ScriptOutput,
    prompt_of,
)
from impasto.services.sd_upscale import SCRIPT_NAME, sd_upscale_request
from impasto.services.upscalers import UpscalerService
from impasto.wire import GenerateRequest

INFO = "Upscales the image by the scale factor; width and height set the tile size"


class SdUpscale:
    title = SCRIPT_NAME
    txt2img = False
    img2img = True

    def arguments(self, is_img2img: bool) -> list[ScriptArg]:
        return [
            ScriptArg(None, "str", INFO),
            ScriptArg("Tile overlap", "int", 64, minimum=0, maximum=256, step=16),
            ScriptArg("Upscaler", "upscaler", "None"),
            ScriptArg("Scale Factor", "float", 2.0, minimum=1, maximum=4, step=0.05),
        ]

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput:
        _, overlap, upscaler, scale = args
        base = ctx.base
        if base.mask_image:
            raise FieldError("mask", "SD upscale upscales the whole image; send it without a mask")
        source = await ctx.source_image() if ctx.source_image is not None else None
        if source is None:
            raise FieldError("init_images", "SD upscale needs the image to upscale")
        seed = ctx.random_seed() if base.seed == -1 else base.seed
        models_dir = ctx.services.catalog.models_dir
        # Listing the installed upscalers reads the models folder: not on the event loop.
        request = await asyncio.to_thread(
            sd_upscale_request,
            msgspec.structs.replace(base, init_image=source, batch_size=1),
            [None, overlap, upscaler, scale],
            models_dir,
        )
        requests: list[GenerateRequest] = [
            msgspec.structs.replace(request, seed=offset_seed(seed, n))
            for n in range(len(ctx.iterations))
        ]
        results = await ctx.generate(requests)
        images = [image for found in results for image in found]
        spec = request.sd_upscale
        assert spec is not None
        extra = {
            "SD upscale overlap": spec.overlap,
            "SD upscale upscaler": UpscalerService(models_dir).label(spec.upscaler),
        }
        return ScriptOutput(
            images=images, prompts=[prompt_of(image) for image in images], extra=extra
        )
