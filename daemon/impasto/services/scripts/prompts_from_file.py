"""AUTOMATIC1111's "Prompts from file or textbox": one generation per line.

A line is a prompt, or options as A1111 reads them: ``--prompt "a cat" --steps 20 --seed 5``.
Arguments: Iterate seed every line, Use same random seed for all lines, List of prompt inputs.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

import msgspec

from impasto.engine.noise import offset_seed
from impasto.services.errors import FieldError
from impasto.services.scripts.base import (
    FIELD,
    ScriptArg,
    ScriptContext,
    ScriptOutput,
    prompt_of,
)
from impasto.wire import GenerateRequest

MAX_LINES = 200


def _flag(text: str) -> bool:
    return text == "true"


def _side(text: str) -> int:
    """A "Resize seed from" side: rounded down to 8 as A1111 divides it; -1 or 0 is off."""
    value = int(text)
    return max(value - value % 8, 0)


# A1111's option -> (Impasto field or None to accept and ignore, how the text reads).
OPTIONS: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "prompt": ("prompt", str),
    "negative_prompt": ("negative_prompt", str),
    "seed": ("seed", int),
    "steps": ("steps", int),
    "cfg_scale": ("cfg_scale", float),
    "width": ("width", int),
    "height": ("height", int),
    "batch_size": ("batch_size", int),
    "n_iter": ("n_iter", int),
    "sampler_name": ("sampler", str),
    "sampler_index": (None, int),
    "styles": (None, str),
    "subseed": ("subseed", int),
    "subseed_strength": ("subseed_strength", float),
    "seed_resize_from_h": ("seed_resize_from_height", _side),
    "seed_resize_from_w": ("seed_resize_from_width", _side),
    "outpath_samples": (None, str),
    "outpath_grids": (None, str),
    "prompt_for_display": (None, str),
    "restore_faces": (None, _flag),
    "tiling": ("tiling", _flag),
    "do_not_save_samples": (None, _flag),
    "do_not_save_grid": (None, _flag),
}


def parse_line(line: str, number: int) -> dict[str, Any]:
    """One line's options; a line without ``--`` is a prompt.

    A1111 falls back to the whole line as a prompt when an option is unknown; here the error
    names the line and the option, so a typo does not become a prompt.
    """
    if "--" not in line:
        return {"prompt": line}
    where = f"line {number}"
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise FieldError(FIELD, f"{where}: {exc}") from None
    out: dict[str, Any] = {}
    position = 0
    while position < len(words):
        word = words[position]
        if not word.startswith("--") or position + 1 >= len(words):
            raise FieldError(FIELD, f"{where}: expected --option value at {word!r}")
        name = word[2:]
        if name not in OPTIONS:
            raise FieldError(
                FIELD, f"{where}: unknown option --{name}; known: {', '.join(OPTIONS)}"
            )
        position += 1
        if name in ("prompt", "negative_prompt"):
            # A prompt runs to the next option, unquoted words included.
            words_of_prompt = [words[position]]
            position += 1
            while position < len(words) and not words[position].startswith("--"):
                words_of_prompt.append(words[position])
                position += 1
            out[name] = " ".join(words_of_prompt)
            continue
        field, read = OPTIONS[name]
        try:
            value = read(words[position])
        except ValueError:
            raise FieldError(FIELD, f"{where}: --{name} {words[position]!r} is not valid") from None
        if field is not None:
            out[field] = value
        position += 1
    return out


class PromptsFromFile:
    title = "Prompts from file or textbox"
    txt2img = True
    img2img = True

    def arguments(self, is_img2img: bool) -> list[ScriptArg]:
        return [
            ScriptArg("Iterate seed every line", "bool", False),
            ScriptArg("Use same random seed for all lines", "bool", False),
            ScriptArg("List of prompt inputs", "str", ""),
        ]

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput:
        iterate_seed, same_seed, text = args
        lines = [line.strip() for line in str(text).splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise FieldError(FIELD, "List of prompt inputs is empty; give one prompt per line")
        if len(lines) > MAX_LINES:
            raise FieldError(FIELD, f"{len(lines)} lines; at most {MAX_LINES}")
        base = ctx.base
        seed = base.seed
        if (iterate_seed or same_seed) and seed == -1:
            seed = ctx.random_seed()
        requests: list[GenerateRequest] = []
        for number, line in enumerate(lines, start=1):
            options = parse_line(line, number)
            n_iter = int(options.pop("n_iter", len(ctx.iterations)))
            if not 1 <= n_iter <= 100:
                raise FieldError(FIELD, f"line {number}: --n_iter must be between 1 and 100")
            if "sampler" in options:
                try:
                    options["sampler"], options["schedule"] = ctx.sampler_names(options["sampler"])
                except ValueError as exc:
                    raise FieldError(FIELD, f"line {number}: {exc}") from None
            request = msgspec.structs.replace(base, **{"seed": seed, **options})
            for index in range(n_iter):
                step = index * request.batch_size
                numbered = request.seed if request.seed == -1 else offset_seed(request.seed, step)
                requests.append(msgspec.structs.replace(request, seed=numbered))
            if iterate_seed:
                seed = offset_seed(seed, base.batch_size * len(ctx.iterations))
        results = [image for images in await ctx.generate(requests) for image in images]
        return ScriptOutput(images=results, prompts=[prompt_of(image) for image in results])
