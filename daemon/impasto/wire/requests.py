"""The generation request and its resolved plan.

The ``Meta`` constraints here are the only statement of each limit (``impasto.wire.limits``
reads them).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from impasto.wire.sampling import (
    CHURN_FIELDS,
    ColorCorrection,
    DiscardPenultimate,
    ImageSteps,
    InpaintMaskWeight,
    NegativeMinSigma,
    NoiseMultiplier,
    ResizeMode,
    ScheduleRho,
    ScheduleSigma,
    SgmNoiseMultiplier,
    SigmaChurn,
    SigmaNoise,
    SigmaTmax,
    SigmaTmin,
    SkipEarly,
    UniPCOrder,
    UniPCVariant,
)

Status = Literal["queued", "processing", "completed", "failed", "cancelled"]
ScheduleName = Literal[
    "default",
    "karras",
    "exponential",
    "uniform",
    "polyexponential",
    "sgm_uniform",
    "kl_optimal",
    "align_your_steps",
    "align_your_steps_sdxl",
    "simple",
    "normal",
    "ddim_uniform",
    "beta",
]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)
STATUSES: tuple[Status, ...] = get_args(Status)
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# A model install task: queued, running, then one of the terminal statuses.
InstallStatus = Literal["queued", "running", "completed", "failed", "cancelled"]
ACTIVE_INSTALL: tuple[InstallStatus, ...] = ("queued", "running")
SEQ_MAX = 2**63 - 1  # SQLite's largest integer: no event seq or cursor of ours goes beyond it

# Prompts are text: no control characters but tab, newline and carriage return. (They end up
# in each PNG's text chunks, where a NUL byte is not allowed, and mean nothing to a tokenizer.)
# Patterns are re.search patterns, also valid JSON Schema (ECMA-262) regexes.
CONTROL_FREE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# The same, with at least one character that is not whitespace.
NOT_BLANK = r"^(?=[\s\S]*\S)[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# The text encoder takes any length in 75-token chunks (AUTOMATIC1111 has no cap either); this
# bound, some 60 chunks, only keeps one request from tying the encoder up.
MAX_PROMPT_CHARACTERS = 20_000
Prompt = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=MAX_PROMPT_CHARACTERS,
        pattern=NOT_BLANK,
        description="Read as AUTOMATIC1111 reads it: (word:1.3) emphasis, [from:to:when] and "
        "[a|b] prompt editing, AND with :weight parts, <lora:name:weight> tags (docs/api.md)",
    ),
]
NegativePrompt = Annotated[str, Meta(max_length=MAX_PROMPT_CHARACTERS, pattern=CONTROL_FREE)]
Dimension = Annotated[int, Meta(ge=64, le=2048, multiple_of=8, description="Pixels, multiple of 8")]
Steps = Annotated[int, Meta(ge=1, le=150)]
CfgScale = Annotated[
    float,
    Meta(ge=0, le=30, description="Guidance scale; 1 or less runs without CFG (one UNet batch)"),
]
# Seeds are the design document's int64 (AUTOMATIC1111's 32-bit ones fit, and the ComfyUI
# seeds below 2**63; msgspec bounds stop at int64); image i of a batch takes seed + i, wrapping
# past the top.
SEED_SPACE = 2**63
Seed = Annotated[int, Meta(ge=-1, le=SEED_SPACE - 1, description="-1 draws a random seed")]
BatchSize = Annotated[int, Meta(ge=1, le=10)]
Priority = Annotated[int, Meta(ge=-100, le=100)]
Strength = Annotated[float, Meta(ge=0, le=1)]
ClipSkip = Annotated[int, Meta(ge=1, le=12)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
SeedResizeSide = Annotated[
    int,
    Meta(
        ge=0,
        le=2048,
        multiple_of=8,
        description="A1111's Resize seed from: the start noise is the seed's at this size "
        "(0 = off; set both sides)",
    ),
]
HiresScale = Annotated[float, Meta(ge=1, le=4, description="Target size over the first pass's")]
LoraWeight = Annotated[float, Meta(ge=-2, le=2)]
CacheInterval = Annotated[
    int,
    Meta(
        ge=-1,
        le=10,
        description="DeepCache: the whole UNet every n-th step, its shallow part between; "
        "0 off, -1 the model family's recommended interval",
    ),
]
DecoderName = Literal["full", "fast"]
"""The final decode: the model's VAE, or the tiny TAESD decoder (docs/speed.md)."""
InpaintArea = Literal["whole", "masked"]
"""Inpaint the whole picture, or only the part around the mask at full resolution."""
MaskedContent = Literal["original", "fill", "latent_noise", "latent_nothing"]
"""What the masked part starts from below strength 1 (AUTOMATIC1111's "masked content")."""
InpaintPadding = Annotated[
    int, Meta(ge=0, le=256, description="Pixels of context around the mask (inpaint_area masked)")
]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
MAX_LORAS = 64  # LoRAs a request lists (its prompt's <lora:...> tags are bounded by its length)
SamplerId = Annotated[str, Meta(min_length=1, max_length=64)]
# Query parameters: routes take their QueryParameter bounds from these (``bounds``).
PageLimit = Annotated[int, Meta(ge=1, le=200)]
PageOffset = Annotated[int, Meta(ge=0, le=10**9)]
ThumbSize = Annotated[int, Meta(ge=16, le=1024, description="Longest side of a JPEG thumbnail")]
EventSeq = Annotated[int, Meta(ge=0, le=SEQ_MAX, description="Replay events after this seq")]
KEEP_ALIVE_MAX = 7 * 24 * 3600  # a week; also the keep_alive setting's bound
KeepAlive = Annotated[
    float, Meta(ge=0, le=KEEP_ALIVE_MAX, description="Seconds a loaded model stays while idle")
]


class Schema(msgspec.Struct, kw_only=True):
    """Base of every wire schema."""


class LoraSpec(Schema):
    """A LoRA applied at run time, by its installed name."""

    name: Name
    weight: LoraWeight = 1.0
    # The UNet's weight where it differs from the text encoders' (A1111's <lora:name:te:unet>)
    unet_weight: LoraWeight | None = None


UpscalerName = Literal[
    "latent",
    "latent-antialiased",
    "latent-bicubic",
    "latent-bicubic-antialiased",
    "latent-nearest",
    "latent-nearest-exact",
    "lanczos",
    "nearest",
]
"""Hires fix upscalers: A1111's latent upscale modes, or a resize of the decoded image."""
HiresUpscaler = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="A latent mode, lanczos, nearest, or an installed super-resolution model",
    ),
]


class HiresRequest(Schema):
    """Hires fix (AUTOMATIC1111's): a second img2img pass at a larger size. Each field left out
    takes the first pass's value (``schedule``: where the hires sampler has it, else
    ``default``); ``width``/``height`` win over ``scale``."""

    scale: HiresScale = 2.0
    width: Dimension | None = None
    height: Dimension | None = None
    upscaler: HiresUpscaler = "latent"
    steps: Annotated[int, Meta(ge=0, le=150, description="0: the first pass's steps")] = 0
    strength: Strength = 0.7
    sampler: SamplerId | None = None
    schedule: ScheduleName | None = None
    prompt: Prompt | None = None
    negative_prompt: NegativePrompt | None = None
    cfg_scale: CfgScale | None = None


class SdUpscaleRequest(Schema):
    """AUTOMATIC1111's SD upscale: ``init_image`` upscaled by ``scale``, then img2img over
    overlapping tiles of the request's ``width`` x ``height``, blended into one image."""

    scale: Annotated[float, Meta(ge=1, le=4, description="Upscale factor of the init image")] = 2.0
    overlap: Annotated[int, Meta(ge=0, le=256, description="Pixels tiles overlap by")] = 64
    upscaler: Annotated[str, Meta(min_length=1, max_length=200)] = "lanczos"


class GenerateRequest(Schema):
    """What to generate. A tunable left out (or null) takes the chosen model's default."""

    prompt: Prompt
    negative_prompt: NegativePrompt = ""
    model: str | None = None
    loras: Annotated[list[LoraSpec], Meta(max_length=MAX_LORAS)] = msgspec.field(
        default_factory=list
    )
    width: Dimension | None = None
    height: Dimension | None = None
    steps: Steps | None = None
    cfg_scale: CfgScale | None = None
    seed: Seed = -1
    subseed: Annotated[
        int, Meta(ge=-1, le=SEED_SPACE - 1, description="Variation seed; -1 draws a random one")
    ] = -1
    subseed_strength: Annotated[
        float, Meta(ge=0, le=1, description="How far the start noise moves to the subseed's")
    ] = 0.0
    seed_resize_from_width: SeedResizeSide = 0
    seed_resize_from_height: SeedResizeSide = 0
    noise_seed_delta: Annotated[
        int,
        Meta(
            ge=0,
            le=SEED_SPACE - 1,
            description="A1111's eta noise seed delta (ENSD): the samplers' per-step noise comes "
            "from seed + this; 0 off",
        ),
    ] = 0
    rng: Annotated[
        Literal["pcg64", "cpu", "nv"],
        Meta(
            description="Noise source: pcg64 (Impasto's), cpu: torch's CPU generator, whose "
            "noise for a seed is A1111's with RNG: CPU and ComfyUI's, or nv: torch's CUDA one, "
            "A1111's RNG: NV (its default GPU source's noise on NVIDIA cards)"
        ),
    ] = "pcg64"
    batch_size: BatchSize = 1
    sampler: SamplerId | None = None
    schedule: ScheduleName | None = None
    sigma_min: ScheduleSigma | None = None
    sigma_max: ScheduleSigma | None = None
    rho: ScheduleRho | None = None
    s_min_uncond: NegativeMinSigma = 0.0
    s_min_uncond_all: bool = False
    skip_early_cond: SkipEarly = 0.0
    discard_penultimate_sigma: DiscardPenultimate = False
    sgm_noise_multiplier: SgmNoiseMultiplier = False
    unipc_order: UniPCOrder | None = None
    unipc_variant: UniPCVariant | None = None
    eta: (
        Annotated[
            float,
            Meta(
                ge=0,
                le=1,
                description="Fresh noise per step of the ancestral, SDE and DDIM samplers "
                "(A1111's eta); null: the sampler's own (1; DDIM 0)",
            ),
        ]
        | None
    ) = None
    s_churn: SigmaChurn = 0.0
    s_tmin: SigmaTmin = 0.0
    s_tmax: SigmaTmax | None = None
    s_noise: SigmaNoise = 1.0
    priority: Priority = 0
    init_image: str | None = None
    mask_image: str | None = None
    resize_mode: ResizeMode = "stretch"
    strength: Strength = 0.75
    noise_multiplier: NoiseMultiplier = 1.0
    color_correction: ColorCorrection = False
    color_reference: Annotated[
        str | None,
        Meta(
            description="with color_correction: the picture whose colours the result takes "
            "(base64, a data: URL or upload:<id>, any size); null: the init image"
        ),
    ] = None
    img2img_steps: ImageSteps = "strength"
    inpaint_mask_weight: InpaintMaskWeight = 1.0
    extra_noise: Annotated[
        float,
        Meta(
            ge=0,
            le=1,
            description="img2img, inpainting and the hires pass: the start's noise added once "
            "more, times this (A1111's Extra noise, img2img_extra_noise; its slider's range)",
        ),
    ] = 0.0
    vae: Name | None = None
    clip_skip: ClipSkip = 1
    refiner: Name | None = None
    refiner_switch: Annotated[
        float, Meta(ge=0, le=1, description="Fraction of the steps the base model runs")
    ] = 0.8
    hires: HiresRequest | None = None
    sd_upscale: SdUpscaleRequest | None = None
    cache_interval: CacheInterval = 0
    decoder: DecoderName = "full"
    inpaint_area: InpaintArea = "whole"
    inpaint_padding: InpaintPadding = 32
    masked_content: MaskedContent = "original"
    tiling: Annotated[
        bool | Literal["x", "y"],
        Meta(
            description="Seamless tiling: the picture wraps around, so it tiles without a seam; "
            '"x" or "y" wraps that axis alone (true: both)'
        ),
    ] = False
    plugins: Annotated[
        dict[str, Any], Meta(description="Options for plugins, by plugin name (docs/plugins.md)")
    ] = msgspec.field(default_factory=dict)


CHURN_OFF: dict[str, Any] = {
    f.name: f.default for f in msgspec.structs.fields(GenerateRequest) if f.name in CHURN_FIELDS
}
"""The sigma churn fields at their defaults: no churn."""
