"""The UNet's text conditioning for one request: prompts encoded (per step, where the prompt
edits itself), guidance and DeepCache set up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from impasto.engine.adapters import Components
from impasto.engine.pipelines.base import (
    FeatureCache,
    Guidance,
    Pair,
    PromptSchedule,
    UNet,
    guidance_embedding,
)
from impasto.engine.prompt_schedule import prompt_schedule, text_at
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.sdxl import Conditioning, SdxlPromptEncoder
from impasto.engine.types import GenerationParams


@dataclass(frozen=True)
class StepCount:
    """How a pass counts its steps for prompt editing (engine/prompt_schedule.py)."""

    steps: int
    calls_per_step: float = 1.0
    """UNet calls per sampler step on this sampler's schedule (2 for Heun)."""
    first_pass_steps: int | None = None
    """In a hires pass, the first pass's steps (``when`` is read A1111's hires way)."""

    @classmethod
    def of(cls, scheduler: Scheduler, steps: int, first_pass_steps: int | None) -> StepCount:
        """The count for ``scheduler`` just laid out for ``steps`` (an adaptive sampler, which
        lays out its calls as it goes, counts each call as a step)."""
        calls = len(scheduler.timesteps)
        return cls(steps, max(1.0, calls / max(steps, 1)), first_pass_steps)


Encode = Callable[[str, str | None], Pair]
"""Conditioning for a prompt and (unless None) its negative."""


def build_guidance(
    parts: Components,
    params: GenerationParams,
    model_index: dict[str, Any],
    count: StepCount | None = None,
) -> Guidance | PromptSchedule:
    """Text conditioning for the UNet: SD, SDXL (pooled + time ids) or LCM (cfg embedded).

    ``model_index`` is the folder's model_index.json (SDXL's ``force_zeros_for_empty_prompt``).
    A prompt with A1111's prompt editing gives a schedule, its steps counted as ``count`` says.
    """
    cfg = float(params.cfg_scale)
    cache = None
    if params.cache_interval > 1:
        parts.unet.enable_deep_cache()
        cache = FeatureCache(params.cache_interval)
    embedded = "timestep_cond" in parts.unet.model.inputs
    # A scale of 1 equals the cond output, and LCM embeds the scale: skip the uncond pass.
    guided = cfg > 1.0 and not embedded
    negative = params.negative_prompt if guided else None
    extra: dict[str, np.ndarray] = {}
    if embedded:
        dim = parts.unet.model.input("timestep_cond").shape[-1]
        extra["timestep_cond"] = guidance_embedding(cfg, dim if isinstance(dim, int) else 256)
    prompts_2 = parts.prompts_2
    if prompts_2 is not None:
        zeros = model_index.get("force_zeros_for_empty_prompt", True) is True
        sdxl = SdxlPromptEncoder(parts.prompts, prompts_2, zeros)

        def encode(prompt: str, negative: str | None) -> Pair:
            cond, uncond = sdxl.encode_pair(
                prompt, negative, params.width, params.height, params.clip_skip
            )
            return Conditioning(cond.hidden, {**cond.extra, **extra}), uncond

    else:

        def encode(prompt: str, negative: str | None) -> Pair:
            hidden, uncond = parts.prompts.encode_pair(prompt, negative, params.clip_skip)
            return Conditioning(hidden, dict(extra)), (
                Conditioning(uncond, {}) if uncond is not None else None
            )

    def build(pair: Pair) -> Guidance:
        return guidance_for(parts.unet, pair[0], pair[1], cfg, params.batch_size, cache)

    return scheduled_guidance(
        encode, build, params.prompt, negative, count or StepCount(params.steps)
    )


def scheduled_guidance(
    encode: Encode,
    build: Callable[[Pair], Guidance],
    prompt: str,
    negative: str | None,
    count: StepCount,
) -> Guidance | PromptSchedule:
    """The guidance of ``prompt`` and ``negative``: one, or a schedule where either changes
    between steps. Each distinct pair of texts is encoded once (``[a|b]`` alternates two)."""
    prompts = prompt_schedule(prompt, count.steps, count.first_pass_steps)
    negatives = None
    if negative is not None:
        negatives = prompt_schedule(negative, count.steps, count.first_pass_steps)
    ends = sorted({end for end, _ in prompts} | {end for end, _ in negatives or []})
    pairs: dict[tuple[str, str | None], Pair] = {}
    entries: list[tuple[int, Pair]] = []
    for end in ends:
        texts = (text_at(prompts, end), text_at(negatives, end) if negatives else None)
        if texts not in pairs:
            pairs[texts] = encode(*texts)
        entries.append((end, pairs[texts]))
    if len(pairs) == 1:
        return build(entries[0][1])
    return PromptSchedule(entries, build, count.calls_per_step)


def guidance_for(
    unet: UNet,
    cond: Conditioning,
    uncond: Conditioning | None,
    cfg: float,
    batch: int,
    cache: FeatureCache | None = None,
) -> Guidance:
    """The UNet's inputs for a prompt's (and its negative's, under CFG) conditioning."""
    return Guidance(
        unet,
        cond.hidden,
        uncond.hidden if uncond else None,
        cfg,
        batch,
        extra_cond=cond.extra,
        extra_uncond=uncond.extra if uncond else None,
        cache=cache,
    )
