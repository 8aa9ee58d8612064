"""AUTOMATIC1111's "Prompt matrix": every combination of the prompt's ``|`` parts, in a grid.

"a cat|in the rain|at night" runs "a cat", "a cat, in the rain", "a cat, at night" and
"a cat, in the rain, at night". Arguments: Set at prompt start, Random seeds, Prompt type
(positive/negative), Joining char (comma/space), Grid margins.
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
    ScriptArg,
    ScriptContext,
    ScriptOutput,
    composed,
    decode,
    prompt_of,
)
from impasto.services.scripts.grid import Label, annotate, cell_size, image_grid

MAX_PARTS = 8  # 2**7 = 128 images


class PromptMatrix:
    title = "Prompt Matrix"
    txt2img = True
    img2img = True

    def arguments(self, is_img2img: bool) -> list[ScriptArg]:
        return [
            ScriptArg("Set at prompt start", "bool", False),
            ScriptArg("Random seeds", "bool", False),
            ScriptArg("Prompt type", "choice", "positive", choices=("positive", "negative")),
            ScriptArg("Joining char", "choice", "comma", choices=("comma", "space")),
            ScriptArg("Grid margins", "int", 0, minimum=0, maximum=500, step=2),
        ]

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput:
        at_start, different_seeds, prompt_type, joining, margin = args
        base = ctx.base
        text = base.prompt if prompt_type == "positive" else base.negative_prompt
        parts = text.split("|")
        if len(parts) > MAX_PARTS:
            raise FieldError(
                "prompt", f"the prompt matrix takes at most {MAX_PARTS} parts separated by |"
            )
        delimiter = ", " if joining == "comma" else " "
        prompts = []
        for combination in range(2 ** (len(parts) - 1)):
            chosen = [
                part.strip().strip(",")
                for bit, part in enumerate(parts[1:])
                if combination & (1 << bit)
            ]
            ordered = [*chosen, parts[0]] if at_start else [parts[0], *chosen]
            prompts.append(delimiter.join(ordered))
        seed = ctx.random_seed() if base.seed == -1 else base.seed
        field = "prompt" if prompt_type == "positive" else "negative_prompt"
        requests = [
            msgspec.structs.replace(
                base,
                batch_size=1,
                seed=offset_seed(seed, index if different_seeds else 0),
                **{field: prompt},
            )
            for index, prompt in enumerate(prompts)
        ]
        results = [image for images in await ctx.generate(requests) for image in images]
        if not results:
            return ScriptOutput(images=[], prompts=[])
        grid = await asyncio.to_thread(_grid, results, parts, margin)
        return ScriptOutput(
            images=[grid, *results],
            prompts=[base.prompt, *(prompt_of(image) for image in results)],
            index_of_first_image=1,
        )


def _grid(results: list[ResultImage], parts: list[str], margin: int) -> ResultImage:
    """The combinations in 2**(n//2) rows; each column and row labelled with its parts."""
    options = parts[1:]
    rows = 1 << (len(options) // 2)
    pixels = [decode(image) for image in results]
    grid = image_grid(pixels, rows=min(rows, len(pixels)))
    # Columns count the first half of the parts in binary, rows the second half.
    split = math.ceil(len(options) / 2)
    across, down = options[:split], options[split:]

    def labels(names: list[str], count: int) -> list[list[Label]]:
        return [
            [Label(name.strip(), bool(position & (1 << bit))) for bit, name in enumerate(names)]
            for position in range(count)
        ]

    cols = math.ceil(len(pixels) / rows)
    grid = annotate(grid, cell_size(pixels), labels(across, cols), labels(down, rows), margin)
    first = results[0]
    return composed(grid, first.infotext, first.seed)
