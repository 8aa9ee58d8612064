"""Built-in: embed AUTOMATIC1111's ``parameters`` text and Impasto's request JSON in each PNG."""

from __future__ import annotations

import json
from typing import Any

from impasto.engine.schedulers import sampler_label, schedule_label
from impasto.formats.png import IMPASTO_KEY, PARAMETERS_KEY, format_a1111_parameters
from impasto.plugins.hookspecs import hookimpl
from impasto.plugins.types import PluginContext, PostprocessResult


@hookimpl(trylast=True)
def postprocess_result(result: PostprocessResult, image: Any, context: PluginContext) -> None:
    """Add the two text chunks other tools read the generation settings from."""
    params = result.request  # the job's resolved plan: ids and names, never a path
    sampler = params["sampler"]
    schedule = params.get("schedule", "default")
    result.text[PARAMETERS_KEY] = format_a1111_parameters(
        prompt=params.get("prompt", ""),
        negative_prompt=params.get("negative_prompt", ""),
        steps=params.get("steps", 0),
        sampler_name=sampler_label(sampler),
        # A1111 leaves its automatic schedule out and names the others.
        schedule_type=None if schedule == "default" else schedule_label(schedule),
        cfg_scale=params.get("cfg_scale", 0.0),
        seed=result.seed,
        width=params.get("width", image.width),
        height=params.get("height", image.height),
        model=result.model,
        extra={"Denoising strength": params.get("strength")} if params.get("init_image") else None,
    )
    request = {**params, "seed": result.seed, "model": result.model}
    result.text[IMPASTO_KEY] = json.dumps(request, ensure_ascii=False)
