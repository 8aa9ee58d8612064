"""AUTOMATIC1111's "Loopback" (img2img): each output is the next pass's init image.

Arguments: Loops, Final denoising strength, Denoising strength curve (Aggressive, Linear,
Lazy), Append interrogated prompt at each iteration (only "None": Impasto has no interrogator).
The strength moves from the request's to the final one along the curve; the seed goes up by
one each loop; with colour correction every loop takes the first image's colours. With
several iterations (n_iter) each restarts from the original image and returns its last image.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import msgspec

from impasto.engine.noise import offset_seed
from impasto.services.compat import ResultImage
from impasto.services.errors import FieldError
from impasto.services.scripts.base import (
    FIELD,
    ScriptArg,
    ScriptContext,
    ScriptOutput,
    composed,
    decode,
    prompt_of,
)
from impasto.services.scripts.grid import image_grid


def strength_at(loop: int, loops: int, start: float, final: float, curve: str) -> float:
    """The denoising strength of pass ``loop`` (0-based) of ``loops``."""
    if loops == 1:
        return start
    progress = loop / (loops - 1)
    if curve == "Aggressive":
        shape = math.sin(progress * math.pi * 0.5)
    elif curve == "Lazy":
        shape = 1 - math.cos(progress * math.pi * 0.5)
    else:
        shape = progress
    return start + (final - start) * shape


class Loopback:
    title = "Loopback"
    txt2img = False
    img2img = True

    def arguments(self, is_img2img: bool) -> list[ScriptArg]:
        return [
            ScriptArg("Loops", "int", 4, minimum=1, maximum=32, step=1),
            ScriptArg("Final denoising strength", "float", 0.5, minimum=0, maximum=1, step=0.01),
            ScriptArg(
                "Denoising strength curve",
                "choice",
                "Linear",
                choices=("Aggressive", "Linear", "Lazy"),
            ),
            ScriptArg(
                "Append interrogated prompt at each iteration",
                "choice",
                "None",
                choices=("None", "CLIP", "DeepBooru"),
            ),
        ]

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput:
        loops, final, curve, interrogate = args
        if interrogate != "None":
            raise FieldError(
                FIELD,
                f"Append interrogated prompt {interrogate!r} needs an interrogator, which "
                "Impasto does not have; use None",
            )
        base = msgspec.structs.replace(ctx.base, batch_size=1)
        if base.color_correction and not base.color_reference:
            # A1111 corrects every loop to the first image's colours, so they do not drift.
            base = msgspec.structs.replace(base, color_reference=base.init_image)
        seed = ctx.random_seed() if base.seed == -1 else base.seed
        batches = len(ctx.iterations)
        history: list[ResultImage] = []
        interrupted = False
        for _ in range(batches):
            request = msgspec.structs.replace(base, seed=seed)
            last: ResultImage | None = None
            for loop in range(loops):
                (images,) = await ctx.generate([request])
                if not images:  # cancelled: /interrupt or /skip stops the loop, as in A1111
                    interrupted = True
                    break
                last = images[0]
                if batches == 1:
                    history.append(last)
                request = msgspec.structs.replace(
                    request,
                    init_image=await ctx.upload(last.png),
                    seed=offset_seed(request.seed, 1),
                    strength=strength_at(loop + 1, loops, base.strength, final, curve),
                )
            if batches > 1 and last is not None and not interrupted:
                history.append(last)
            if interrupted:
                break
        extra = {"Final denoising strength": final, "Denoising curve": curve}
        images = list(history)
        prompts = [prompt_of(image) for image in history]
        if len(history) > 1:
            grid = await asyncio.to_thread(_grid, history)
            images.insert(0, grid)
            prompts.insert(0, base.prompt)
        return ScriptOutput(images=images, prompts=prompts, index_of_first_image=0, extra=extra)


def _grid(history: list[ResultImage]) -> ResultImage:
    grid = image_grid([decode(image) for image in history], rows=1)
    return composed(grid, history[0].infotext, history[0].seed)
