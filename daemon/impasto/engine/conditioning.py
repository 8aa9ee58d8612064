"""The UNet's text conditioning for one request: prompts encoded (per step, where the prompt
edits itself), guidance and DeepCache set up."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
from impasto.engine.prompt_schedule import composable_parts, prompt_schedule, text_at
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.sdxl import Conditioning, SdxlPromptEncoder
from impasto.engine.types import GenerationParams, InvalidRequestError


@dataclass(frozen=True)
class StepCount:
    """How a pass counts its steps for prompt editing (engine/prompt_schedule.py)."""

    steps: int
    calls_per_step: float = 1.0
    """UNet calls per sampler step on this sampler's schedule (2 for Heun)."""
    first_pass_steps: int | None = None
    """In a hires pass, the first pass's steps (``when`` is read A1111's hires way)."""

    @classmethod
    def of(
        cls, scheduler: Scheduler, steps: int, first_pass_steps: int | None, laid: int | None = None
    ) -> StepCount:
        """The count for ``scheduler`` just laid out for ``laid`` steps (default ``steps``), of
        which a pass runs ``steps`` (an adaptive sampler, which lays out its calls as it goes,
        counts each call as a step)."""
        calls = len(scheduler.timesteps)
        return cls(steps, max(1.0, calls / max(laid or steps, 1)), first_pass_steps)


Encode = Callable[[Sequence[str], str | None], Pair]
"""Conditioning for a prompt's parts (one, or each part of an ``AND`` prompt) and (unless
None) its negative."""
Build = Callable[[Pair, tuple[float, ...]], Guidance]
"""Guidance from a prompt's conditioning and its parts' weights."""


def check_composable(prompt: str, embedded: bool) -> bool:
    """Whether ``prompt`` has ``AND`` parts (A1111's composable diffusion), whose guidance
    starts from the uncond. A UNet that embeds its guidance scale (LCM) has none to start from:
    there such a prompt is an InvalidRequestError on ``prompt``."""
    composed = len(composable_parts(prompt)) > 1
    if composed and embedded:
        raise InvalidRequestError(
            "prompt",
            "AND (composable prompts) needs classifier-free guidance, and this model (LCM) "
            "embeds its guidance scale instead; write one prompt",
        )
    return composed


def negative_for(prompt: str, negative: str, guided: bool, embedded: bool) -> str | None:
    """The negative prompt to encode: with CFG, or for an ``AND`` prompt, whose parts are
    guided from the uncond even at a scale of 1 (:func:`check_composable`); else None."""
    return negative if check_composable(prompt, embedded) or guided else None


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
    negative = negative_for(params.prompt, params.negative_prompt, guided, embedded)
    extra: dict[str, np.ndarray] = {}
    if embedded:
        dim = parts.unet.model.input("timestep_cond").shape[-1]
        extra["timestep_cond"] = guidance_embedding(cfg, dim if isinstance(dim, int) else 256)
    prompts_2 = parts.prompts_2
    if prompts_2 is not None:
        zeros = model_index.get("force_zeros_for_empty_prompt", True) is True
        sdxl = SdxlPromptEncoder(parts.prompts, prompts_2, zeros)

        def encode(prompts: Sequence[str], negative: str | None) -> Pair:
            cond, uncond = sdxl.encode(
                prompts, negative, params.width, params.height, params.clip_skip
            )
            return Conditioning(cond.hidden, {**cond.extra, **extra}), uncond

    else:

        def encode(prompts: Sequence[str], negative: str | None) -> Pair:
            hidden, uncond = parts.prompts.encode(prompts, negative, params.clip_skip)
            return Conditioning(hidden, dict(extra)), (
                Conditioning(uncond, {}) if uncond is not None else None
            )

    def build(pair: Pair, weights: tuple[float, ...]) -> Guidance:
        cond, uncond = pair
        return guidance_for(parts.unet, cond, uncond, cfg, params.batch_size, cache, weights)

    return scheduled_guidance(
        encode, build, params.prompt, negative, count or StepCount(params.steps)
    )


def scheduled_guidance(
    encode: Encode,
    build: Build,
    prompt: str,
    negative: str | None,
    count: StepCount,
) -> Guidance | PromptSchedule:
    """The guidance of ``prompt`` (its ``AND`` parts) and ``negative``: one, or a schedule
    where any of them changes between steps. Each distinct set of texts is encoded once
    (``[a|b]`` alternates two)."""
    parts = composable_parts(prompt)
    weights = tuple(weight for _, weight in parts)
    schedules = [prompt_schedule(text, count.steps, count.first_pass_steps) for text, _ in parts]
    negatives = None
    if negative is not None:
        negatives = prompt_schedule(negative, count.steps, count.first_pass_steps)
    ends = sorted({end for schedule in [*schedules, negatives or []] for end, _ in schedule})
    pairs: dict[tuple[tuple[str, ...], str | None], Pair] = {}
    entries: list[tuple[int, Pair]] = []
    for end in ends:
        texts = tuple(text_at(schedule, end) for schedule in schedules)
        key = (texts, text_at(negatives, end) if negatives else None)
        if key not in pairs:
            pairs[key] = encode(*key)
        entries.append((end, pairs[key]))

    def weighted(pair: Pair) -> Guidance:
        return build(pair, weights)

    if len(pairs) == 1:
        return weighted(entries[0][1])
    return PromptSchedule(entries, weighted, count.calls_per_step)


def guidance_for(
    unet: UNet,
    cond: Conditioning,
    uncond: Conditioning | None,
    cfg: float,
    batch: int,
    cache: FeatureCache | None = None,
    weights: tuple[float, ...] = (1.0,),
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
        weights=weights,
    )
