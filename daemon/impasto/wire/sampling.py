"""The sampling settings a generation request may tune beyond steps and CFG: the noise
multiplier, sigma churn, the schedule's bounds, the skipping of the negative prompt's pass and
A1111's sigma options (discarding the next-to-last sigma, the SGM noise multiplier) and its
UniPC options.

As in ``requests``, the ``Meta`` constraints here are the only statement of each limit.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

NoiseMultiplier = Annotated[
    float,
    Meta(
        ge=0,
        le=1.5,
        description="img2img and inpainting: the noise added to the init image's latents, times "
        "this (A1111's initial_noise_multiplier, its slider's range)",
    ),
]
ResizeMode = Annotated[
    Literal["stretch", "crop", "fill", "latent"],
    Meta(
        description="How an init_image (and its mask) of another shape than width x height is "
        "laid out: stretch = resized to it; crop = scaled to cover it, the centre kept; fill = "
        "scaled to fit, the sides left filled with the picture's edges stretched; latent = "
        "encoded at its own size, its latents resized (bilinear; img2img without a mask, not "
        "on an inpainting model) (A1111's Just resize, Crop and resize, Resize and fill, Just "
        "resize (latent upscale))"
    ),
]
ColorCorrection = Annotated[
    bool,
    Meta(
        description="img2img and inpainting: the result's colours matched to the init image's "
        "(each 8-bit Lab channel's histogram), its own luminosity kept (A1111's "
        "img2img_color_correction)"
    ),
]
InpaintMaskWeight = Annotated[
    float,
    Meta(
        ge=0,
        le=1,
        description="inpainting models (a 9-channel UNet): how much of the picture it repaints "
        "the UNet does not see, init image x (1 - weight x mask); 1 hides what is masked, 0 "
        "shows it all (A1111's inpainting_mask_weight, Conditional mask weight)",
    ),
]
SigmaChurn = Annotated[
    float,
    Meta(
        ge=0,
        le=100,
        description="Euler, Heun, DPM2: noise added back before each step, spread over the steps "
        "(Karras et al.'s S_churn; A1111's sigma churn, its slider's range); 0 off",
    ),
]
SigmaTmin = Annotated[
    float, Meta(ge=0, le=10, description="Sigma churn acts at sigmas from this (A1111's tmin)")
]
SigmaTmax = Annotated[
    float,
    Meta(
        ge=0,
        le=999,
        description="Sigma churn acts at sigmas up to this (A1111's tmax); null: no upper bound",
    ),
]
SigmaNoise = Annotated[
    float,
    Meta(ge=0, le=1.1, description="The churn's fresh noise times this (A1111's sigma noise)"),
]
CHURN_FIELDS = ("s_churn", "s_tmin", "s_tmax", "s_noise")
ScheduleSigma = Annotated[
    float,
    Meta(
        ge=0.001,
        le=5000,
        description="Karras, exponential, polyexponential, KL optimal, SGM uniform, normal: "
        "where the schedule's sigmas end (sigma_min) or start (sigma_max) instead of the "
        "model's (A1111's schedule sigma min/max, ComfyUI's Karras scheduler node); null: theirs",
    ),
]
ScheduleRho = Annotated[
    float,
    Meta(
        ge=0.01,
        le=100,
        description="Karras (7) and polyexponential (1): the schedule's curvature; higher falls "
        "faster from the top (A1111's schedule rho); null: theirs",
    ),
]
NegativeMinSigma = Annotated[
    float,
    Meta(
        ge=0,
        le=15,
        description="Below this sigma every other step (every step with s_min_uncond_all) skips "
        "the negative prompt's pass: faster, guided a little less (A1111's Negative Guidance "
        "minimum sigma, its slider's range); 0 off; needs cfg_scale above 1",
    ),
]
SkipEarly = Annotated[
    float,
    Meta(
        ge=0,
        le=1,
        description="The first fraction of the steps runs without the negative prompt's pass "
        "(A1111's Ignore negative prompt during early sampling); 0 off; needs cfg_scale above 1",
    ),
]
UNCOND_SKIP_FIELDS = ("s_min_uncond", "s_min_uncond_all", "skip_early_cond")
"""The request's settings for leaving the negative prompt's pass out of some steps."""
BOUND_FIELDS = ("sigma_min", "sigma_max", "rho")
"""The request's schedule bounds (the schedules that span a range, and those with a rho)."""
"""The request's sigma churn settings (Euler, Heun and DPM2 take them)."""
DiscardPenultimate = Annotated[
    bool,
    Meta(
        description="A1111's Always discard next-to-last sigma: the k-diffusion samplers lay "
        "out one step more and drop the last sigma before the end (DPM2 and DPM2 a always do)"
    ),
]
SgmNoiseMultiplier = Annotated[
    bool,
    Meta(
        description="A1111's SGM noise multiplier: a txt2img run with a k-diffusion sampler "
        "starts from sqrt(sigma^2 + 1) times the noise instead of sigma times it, as "
        "Stability's SDXL code does (the first pass only; none with init_image)"
    ),
]
UniPCOrder = Annotated[
    int,
    Meta(
        ge=1,
        le=3,
        description="UniPC's order (A1111's UniPC order, diffusers' solver_order); null: 2",
    ),
]
UniPCVariant = Annotated[
    Literal["bh1", "bh2"],
    Meta(
        description="UniPC's variant, its B(h): bh1 = h, bh2 = e^h - 1 (A1111's UniPC variant, "
        "diffusers' solver_type); null: bh2"
    ),
]
UNIPC_FIELDS = ("unipc_order", "unipc_variant")
ImageSteps = Annotated[
    Literal["strength", "a1111", "exact"],
    Meta(
        description="How a run from an image (img2img, inpainting, the hires pass) counts its "
        "steps: strength = the last steps x strength of the schedule (diffusers); a1111 = one "
        "more (A1111's img2img); exact = steps of them, the schedule laid out for steps / "
        "strength (A1111's hires pass and img2img_fix_steps, ComfyUI's denoise)"
    ),
]
