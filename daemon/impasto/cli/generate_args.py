"""The `impasto generate` command line: its flags, the request fields they fill, and the
parsers of their values."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, get_args

import platformdirs

from impasto.cli.common import finite_float, output_path, plugin_option, ruled
from impasto.cli.image_args import add_image_arguments, span
from impasto.wire import LIMITS, SCHEDULE_NAMES, UpscalerName

# Flag -> request field; flags left out let the daemon (and the model) choose.
REQUEST_FIELDS = {
    "negative": "negative_prompt",
    "model": "model",
    "width": "width",
    "height": "height",
    "steps": "steps",
    "cfg": "cfg_scale",
    "seed": "seed",
    "subseed": "subseed",
    "subseed_strength": "subseed_strength",
    "batch": "batch_size",
    "sampler": "sampler",
    "schedule": "schedule",
    "sigma_min": "sigma_min",
    "sigma_max": "sigma_max",
    "rho": "rho",
    "eta": "eta",
    "s_churn": "s_churn",
    "s_tmin": "s_tmin",
    "s_tmax": "s_tmax",
    "s_noise": "s_noise",
    "s_min_uncond": "s_min_uncond",
    "s_min_uncond_all": "s_min_uncond_all",
    "skip_early_cond": "skip_early_cond",
    "discard_penultimate_sigma": "discard_penultimate_sigma",
    "sgm_noise_multiplier": "sgm_noise_multiplier",
    "unipc_order": "unipc_order",
    "unipc_variant": "unipc_variant",
    "rng": "rng",
    "noise_seed_delta": "noise_seed_delta",
    "priority": "priority",
    "strength": "strength",
    "resize_mode": "resize_mode",
    "noise_multiplier": "noise_multiplier",
    "color_correction": "color_correction",
    "extra_noise": "extra_noise",
    "inpaint_mask_weight": "inpaint_mask_weight",
    "img2img_steps": "img2img_steps",
    "cache_interval": "cache_interval",
    "decoder": "decoder",
    "inpaint_area": "inpaint_area",
    "inpaint_padding": "inpaint_padding",
    "masked_content": "masked_content",
    "vae": "vae",
    "clip_skip": "clip_skip",
    "refiner": "refiner",
    "refiner_switch": "refiner_switch",
    "tiling": "tiling",
}


MODEL_DEFAULT = "default: the model's"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`generate`'s positional prompt and flags."""
    parser.add_argument("prompt", help="what to draw")
    parser.add_argument("--negative", metavar="TEXT", help="what to keep out of the image")
    parser.add_argument("--model", help="model id (default: the daemon's default model)")
    parser.add_argument("--width", type=int, help=f"{span('width')} ({MODEL_DEFAULT})")
    parser.add_argument("--height", type=int, help=f"{span('height')} ({MODEL_DEFAULT})")
    parser.add_argument(
        "--steps", type=int, help=f"sampler steps, {span('steps')} ({MODEL_DEFAULT})"
    )
    parser.add_argument(
        "--cfg",
        type=finite_float,
        metavar="SCALE",
        help=f"guidance scale, {span('cfg_scale')}; 1 or less: no guidance ({MODEL_DEFAULT})",
    )
    parser.add_argument("--seed", type=int, help="-1 for a random seed")
    parser.add_argument(
        "--subseed", type=int, metavar="SEED", help="variation seed (-1 random; A1111's)"
    )
    parser.add_argument(
        "--subseed-strength",
        type=finite_float,
        metavar="X",
        help=f"how far toward the variation seed's noise, {span('subseed_strength')}",
    )
    parser.add_argument(
        "--seed-resize-from",
        type=seed_size,
        metavar="WxH",
        help="start from the noise the seed gives at this size (A1111's Resize seed from), so a "
        "picture keeps its layout at another --width/--height",
    )
    parser.add_argument(
        "--batch", type=int, metavar="N", help=f"images to make, {span('batch_size')}"
    )
    parser.add_argument(
        "--sampler", help=f"sampler id or name, see GET /api/v1/samplers ({MODEL_DEFAULT})"
    )
    parser.add_argument("--schedule", choices=SCHEDULE_NAMES)
    ranged = "karras, exponential, polyexponential, kl_optimal, sgm_uniform and normal"
    parser.add_argument(
        "--sigma-min",
        type=finite_float,
        metavar="SIGMA",
        help=f"where the {ranged} schedules end, {span('sigma_min')} (default: the model's)",
    )
    parser.add_argument(
        "--sigma-max",
        type=finite_float,
        metavar="SIGMA",
        help=f"where those schedules start, {span('sigma_max')} (default: the model's)",
    )
    parser.add_argument(
        "--rho",
        type=finite_float,
        metavar="X",
        help=f"the karras and polyexponential schedules' curvature, {span('rho')} "
        "(their own: 7 and 1)",
    )
    parser.add_argument(
        "--rng",
        choices=LIMITS["rng"].choices,
        help="noise source: pcg64 (default), cpu: torch's CPU generator, so a seed starts "
        "from the noise AUTOMATIC1111 (RNG: CPU) and ComfyUI give it, or nv: torch's CUDA one "
        "(AUTOMATIC1111's RNG: NV, its default GPU noise on NVIDIA cards)",
    )
    parser.add_argument(
        "--eta",
        type=finite_float,
        metavar="X",
        help=f"fresh noise per step of the ancestral, SDE and DDIM samplers, {span('eta')} "
        "(their own: 1; DDIM 0)",
    )
    parser.add_argument(
        "--noise-seed-delta",
        type=int,
        metavar="N",
        help="A1111's eta noise seed delta (ENSD): the samplers' per-step noise comes from "
        "seed + N (default 0)",
    )
    churn = "Euler, Heun and DPM2's sigma churn"
    parser.add_argument(
        "--s-churn",
        type=finite_float,
        metavar="X",
        help=f"{churn}: noise added back before each step ({span('s_churn')}; default 0, off)",
    )
    parser.add_argument(
        "--s-tmin",
        type=finite_float,
        metavar="SIGMA",
        help=f"{churn} acts from this sigma (default 0)",
    )
    parser.add_argument(
        "--s-tmax",
        type=finite_float,
        metavar="SIGMA",
        help=f"{churn} acts up to this sigma (default: all)",
    )
    parser.add_argument(
        "--s-noise",
        type=finite_float,
        metavar="X",
        help=f"{churn}'s noise times this ({span('s_noise')}; default 1)",
    )
    parser.add_argument(
        "--s-min-uncond",
        type=finite_float,
        metavar="SIGMA",
        help="below this sigma every other step skips the negative prompt's pass, faster "
        f"(A1111's Negative Guidance minimum sigma, {span('s_min_uncond')}; default 0, off)",
    )
    parser.add_argument(
        "--s-min-uncond-all",
        action="store_true",
        default=None,
        help="with --s-min-uncond: every step below that sigma skips it, not every other",
    )
    parser.add_argument(
        "--skip-early-cond",
        type=finite_float,
        metavar="FRACTION",
        help="the first fraction of the steps skips the negative prompt's pass "
        f"({span('skip_early_cond')}; default 0, off)",
    )
    parser.add_argument(
        "--discard-penultimate-sigma",
        action="store_true",
        default=None,
        help="A1111's Always discard next-to-last sigma: lay out one step more and drop the last "
        "sigma before the end (DPM2 and DPM2 a always do)",
    )
    parser.add_argument(
        "--sgm-noise-multiplier",
        action="store_true",
        default=None,
        help="A1111's SGM noise multiplier: a txt2img run with a k-diffusion sampler starts from "
        "sqrt(sigma^2 + 1) times the noise, as Stability's SDXL code does",
    )
    parser.add_argument(
        "--unipc-order",
        type=int,
        metavar="N",
        help=f"UniPC's order ({span('unipc_order')}; default 2; A1111's UniPC order)",
    )
    parser.add_argument(
        "--unipc-variant",
        choices=LIMITS["unipc_variant"].choices,
        help="UniPC's variant (default bh2; A1111's UniPC variant)",
    )
    parser.add_argument("--priority", type=int, help=f"{span('priority')}, higher runs first")
    add_image_arguments(parser)
    parser.add_argument(
        "--hires",
        type=hires_size,
        metavar="SCALE|WxH",
        help="hires fix: a second pass at 2x (or 1.5, or 1024x768) the size",
    )
    parser.add_argument(
        "--hires-upscaler",
        metavar="NAME",
        help=f"hires upscaler: {', '.join(get_args(UpscalerName))} or an installed "
        "super-resolution model (`impasto upscalers`; default latent)",
    )
    parser.add_argument(
        "--hires-steps", type=int, metavar="N", help="second pass steps (default: --steps)"
    )
    parser.add_argument(
        "--hires-strength",
        type=finite_float,
        metavar="F",
        help="second pass denoising (default 0.7)",
    )
    parser.add_argument("--hires-sampler", metavar="NAME", help="second pass sampler")
    parser.add_argument("--hires-schedule", choices=SCHEDULE_NAMES, help="second pass schedule")
    parser.add_argument("--hires-prompt", metavar="TEXT", help="second pass prompt")
    parser.add_argument("--hires-cfg", type=finite_float, metavar="SCALE", help="second pass CFG")
    parser.add_argument(
        "--cache-interval",
        type=int,
        metavar="N",
        help=f"DeepCache: the whole UNet every N-th step ({span('cache_interval')}; "
        "-1: the model family's recommended N; default 0, off)",
    )
    parser.add_argument(
        "--decoder",
        choices=LIMITS["decoder"].choices,
        help="final decode: full (the model's VAE, default) or fast (TAESD, if installed)",
    )
    parser.add_argument(
        "--lora",
        dest="loras",
        action="append",
        type=lora_spec,
        metavar="NAME[:WEIGHT]",
        help="a LoRA from the models folder's loras/ at WEIGHT (default 1); repeatable "
        "(A1111's <lora:NAME:WEIGHT> in the prompt works too)",
    )
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        type=plugin_option,
        metavar="NAME[=VALUE]",
        help="options for a plugin, as the request's plugins.NAME: a JSON value "
        "(--plugin upscale=2, --plugin 'styles=[\"cinematic\"]'), else the text as a string "
        "(--plugin styles=cinematic); NAME alone is true; repeatable (impasto plugins list)",
    )
    parser.add_argument("--vae", metavar="NAME", help="an installed VAE instead of the model's")
    parser.add_argument(
        "--clip-skip",
        type=int,
        metavar="N",
        help=f"AUTOMATIC1111's clip skip: 1 (default) uses the last text encoder layer "
        f"({span('clip_skip')})",
    )
    parser.add_argument(
        "--tiling",
        action="store_true",
        default=None,
        help="seamless tiling: the picture wraps around, so it tiles without a seam",
    )
    parser.add_argument(
        "--tiling-axis",
        choices=("x", "y"),
        help="seamless tiling along one axis only: x wraps left to right, y top to bottom",
    )
    parser.add_argument("--refiner", metavar="ID", help="an SDXL refiner for the last steps")
    parser.add_argument(
        "--refiner-switch",
        type=finite_float,
        metavar="F",
        help="fraction of the steps the base model runs before the refiner (default 0.8)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=output_path,
        metavar="DIR",
        help=f"the folder to save in (default: {default_output_dir()}); NAME.png: that file "
        "(NAME-0.png, NAME-1.png, ... for a batch); -: the PNG to standard output (one picture)",
    )
    parser.add_argument("--detach", action="store_true", help="print the job id and return")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar or queue line, only the files"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout instead of the paths: the finished job as "
        "GET /api/v1/generate/ID answers it (seeds, warnings, error) and the saved files; "
        "with --detach the job id and queue position",
    )
    _say_ranges(parser)


def _say_ranges(parser: argparse.ArgumentParser) -> None:
    """Give every number option whose request field has a limit that limit's rule for a value
    that is not a number (``--steps many``: "'many': must be an integer between 1 and 150"),
    and let every option with choices take them as A1111 writes them (``--schedule Karras``,
    ``"SGM Uniform"``), as ``--sampler`` takes "Euler a"."""
    fields = {**REQUEST_FIELDS, **{flag: f"hires_{f}" for flag, f in HIRES_FLAGS.items()}}
    for action in parser._actions:
        limit = LIMITS.get(fields.get(action.dest, ""))
        if limit is not None and action.type in (int, finite_float):
            action.type = ruled(action.type, limit.rule)
        if action.choices is not None and action.type is None:
            action.type = choice_name


def choice_name(text: str) -> str:
    """A choice as its id: lower case, words joined by ``_`` ("SGM Uniform" -> sgm_uniform)."""
    return "_".join(text.lower().split())


def default_output_dir() -> Path:
    """Where `generate` saves without ``-o``: an Impasto folder in the user's Pictures."""
    return Path(platformdirs.user_pictures_dir()) / "Impasto"


def hires_size(text: str) -> dict[str, Any]:
    """``2x``, ``1.5`` or ``1024x768`` as the hires object's scale or size."""
    value = text.strip().lower()
    try:
        if value.endswith("x"):
            return {"scale": finite_float(value[:-1])}
        if "x" in value:
            width, height = value.split("x", 1)
            return {"width": int(width), "height": int(height)}
        return {"scale": finite_float(value)}
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a scale (2x, 1.5) or a size (1024x768)"
        ) from None


def seed_size(text: str) -> tuple[int, int]:
    """``512x768`` as (width, height)."""
    try:
        width, height = text.strip().lower().split("x", 1)
        return int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (512x768)") from None


def lora_spec(text: str) -> dict[str, Any]:
    """``NAME`` or ``NAME:WEIGHT`` as a request's LoRA entry."""
    name, colon, weight = text.rpartition(":")
    if not colon:
        return {"name": text}
    return {"name": name, "weight": finite_float(weight, f"{text!r}: the weight after ':'")}


HIRES_FLAGS = {
    "hires_upscaler": "upscaler",
    "hires_steps": "steps",
    "hires_strength": "strength",
    "hires_sampler": "sampler",
    "hires_schedule": "schedule",
    "hires_prompt": "prompt",
    "hires_cfg": "cfg_scale",
}
