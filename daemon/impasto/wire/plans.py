"""What runs: a request resolved into a plan, every default filled in (``services.plan``).

The request schemas (``requests``) say what may be asked; these are what the queue stores and
the worker reads. Ids and names only, never local paths.
"""

from __future__ import annotations

from typing import Any

import msgspec

from impasto.wire.requests import LoraSpec, Schema


class ResolvedHires(Schema, kw_only=True):
    """The second pass of a plan: its size resolved, the rest as asked (None: the first's)."""

    width: int
    height: int
    upscaler: str = "latent"
    steps: int = 0
    strength: float = 0.7
    sampler: str | None = None
    schedule: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None


class ResolvedSdUpscale(Schema, kw_only=True):
    """SD upscale in a plan: the upscaler's id, the source size, the result's size."""

    scale: float = 2.0
    overlap: int = 64
    upscaler: str = "lanczos"
    width: int = 0
    height: int = 0


IMAGE_FIELDS = ("init_image", "mask_image", "color_reference")
"""The request's (and the plan's) pictures: inline ones are stored once, as uploads."""


class ResolvedPlan(Schema, kw_only=True):
    """A request with every default filled in: what runs. Ids and names only, never paths."""

    prompt: str
    negative_prompt: str = ""
    model: str
    family: str = ""
    width: int
    height: int
    steps: int
    cfg_scale: float
    seed: int = -1
    subseed: int = -1
    subseed_strength: float = 0.0
    seed_resize_from_width: int = 0
    seed_resize_from_height: int = 0
    noise_seed_delta: int = 0
    rng: str = "pcg64"
    batch_size: int = 1
    sampler: str
    schedule: str = "default"
    sigma_min: float | None = None
    sigma_max: float | None = None
    rho: float | None = None
    s_min_uncond: float = 0.0
    s_min_uncond_all: bool = False
    skip_early_cond: float = 0.0
    discard_penultimate_sigma: bool = False
    sgm_noise_multiplier: bool = False
    unipc_order: int | None = None
    unipc_variant: str | None = None
    eta: float | None = None
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float | None = None
    s_noise: float = 1.0
    priority: int = 0
    init_image: str | None = None
    mask_image: str | None = None
    strength: float = 0.75
    noise_multiplier: float = 1.0
    latent_resize: bool = False
    """``resize_mode`` latent with an init image of another size, which is stored at its own."""
    color_correction: bool = False
    color_reference: str | None = None
    img2img_steps: str = "strength"
    inpaint_mask_weight: float = 1.0
    extra_noise: float = 0.0
    loras: list[LoraSpec] = msgspec.field(default_factory=list)
    embeddings: list[str] = msgspec.field(default_factory=list)
    vae: str | None = None
    clip_skip: int = 1
    refiner: str | None = None
    refiner_switch: float = 0.8
    hires: ResolvedHires | None = None
    sd_upscale: ResolvedSdUpscale | None = None
    cache_interval: int = 0
    decoder: str = "full"
    inpaint_area: str = "whole"
    inpaint_padding: int = 32
    masked_content: str = "original"
    tiling: bool | str = False
    fast_decoder: str | None = None
    """The installed TAESD for previews and ``decoder: fast`` (None: the model's own, if any)."""
    plugins: dict[str, Any] = msgspec.field(default_factory=dict)
