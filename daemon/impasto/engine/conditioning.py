"""The UNet's text conditioning for one request: prompts encoded, guidance and DeepCache set up."""

from __future__ import annotations

from typing import Any

from impasto.engine.adapters import Components
from impasto.engine.pipelines.base import FeatureCache, Guidance, UNet, guidance_embedding
from impasto.engine.sdxl import Conditioning, SdxlPromptEncoder
from impasto.engine.types import GenerationParams


def build_guidance(
    parts: Components, params: GenerationParams, model_index: dict[str, Any]
) -> Guidance:
    """Text conditioning for the UNet: SD, SDXL (pooled + time ids) or LCM (cfg embedded).

    ``model_index`` is the folder's model_index.json (SDXL's ``force_zeros_for_empty_prompt``).
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
    if parts.prompts_2 is not None:
        zeros = model_index.get("force_zeros_for_empty_prompt", True) is True
        sdxl = SdxlPromptEncoder(parts.prompts, parts.prompts_2, zeros)
        cond, uncond = sdxl.encode_pair(
            params.prompt, negative, params.width, params.height, params.clip_skip
        )
    else:
        hidden, hidden_uncond = parts.prompts.encode_pair(params.prompt, negative, params.clip_skip)
        cond = Conditioning(hidden, {})
        uncond = Conditioning(hidden_uncond, {}) if hidden_uncond is not None else None
    if embedded:
        dim = parts.unet.model.input("timestep_cond").shape[-1]
        cond.extra["timestep_cond"] = guidance_embedding(cfg, dim if isinstance(dim, int) else 256)
    return guidance_for(parts.unet, cond, uncond, cfg, params.batch_size, cache)


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
