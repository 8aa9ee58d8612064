"""Built-in: embed AUTOMATIC1111's ``parameters`` text and Impasto's request JSON in each PNG."""

from __future__ import annotations

import json
from typing import Any

from impasto.engine.noise import offset_seed
from impasto.engine.schedulers import (
    eta_default,
    sampler_discards,
    sampler_label,
    schedule_label,
)
from impasto.engine.upscale_latents import UPSCALER_LABELS
from impasto.formats.png import (
    A1111_IMAGE_STEPS,
    BOUND_LABELS,
    CHURN_LABELS,
    IMAGE_STEPS_LABEL,
    IMPASTO_KEY,
    PARAMETERS_KEY,
    UNCOND_SKIP_LABELS,
    UNIPC_LABELS,
    format_a1111_parameters,
)
from impasto.formats.prompt_tags import with_lora_tags
from impasto.plugins.hookspecs import hookimpl
from impasto.plugins.types import PluginContext, PostprocessResult
from impasto.wire import CHURN_OFF


@hookimpl(trylast=True)
def postprocess_result(result: PostprocessResult, image: Any, context: PluginContext) -> None:
    """Add the two text chunks other tools read the generation settings from."""
    params = result.request  # the job's resolved plan: ids and names, never a path
    sampler = params["sampler"]
    schedule = params.get("schedule", "default")
    loras = [
        (lora["name"], lora["weight"], lora.get("unet_weight")) for lora in params.get("loras", [])
    ]
    result.text[PARAMETERS_KEY] = format_a1111_parameters(
        # A1111's prompt holds its LoRAs as tags: tools that read the text (A1111's PNG Info,
        # Civitai) learn them from there.
        prompt=with_lora_tags(params.get("prompt", ""), loras),
        negative_prompt=params.get("negative_prompt", ""),
        steps=params.get("steps", 0),
        sampler_name=sampler_label(sampler),
        # Always named: a PNG without it means A1111's per-sampler "Automatic" to its readers,
        # which is not the model's own spacing ("Default").
        schedule_type=schedule_label(schedule),
        cfg_scale=params.get("cfg_scale", 0.0),
        seed=result.seed,
        width=params.get("width", image.width),
        height=params.get("height", image.height),
        model=result.model,
        extra=_extra(params, result.index),
    )
    request = {**params, "seed": result.seed, "model": result.model}
    if params.get("subseed_strength"):
        request["subseed"] = offset_seed(params["subseed"], result.index)  # this image's
    result.text[IMPASTO_KEY] = json.dumps(request, ensure_ascii=False)


def _extra(params: dict[str, Any], index: int) -> dict[str, Any] | None:
    """The VAE swapped in, the pass's keys, A1111's ``Clip skip`` where it is above 1, its
    variation seed (image i of a batch: subseed + i) and refiner keys where they apply (as
    A1111 writes them)."""
    clip_skip = params.get("clip_skip", 1)
    # A1111 writes ``VAE`` right after ``Model`` when one replaces the checkpoint's own.
    extra: dict[str, Any] = {"VAE": params["vae"]} if params.get("vae") else {}
    extra.update(_pass_extra(params) or {})
    extra.update({"Clip skip": clip_skip} if clip_skip > 1 else {})
    if params.get("subseed_strength"):
        extra["Variation seed"] = offset_seed(params["subseed"], index)
        extra["Variation seed strength"] = params["subseed_strength"]
    if params.get("seed_resize_from_width") and params.get("seed_resize_from_height"):
        size = f"{params['seed_resize_from_width']}x{params['seed_resize_from_height']}"
        extra["Seed resize from"] = size
    if params.get("refiner"):
        extra["Refiner"] = params["refiner"]
        extra["Refiner switch at"] = params.get("refiner_switch", 0.8)
    extra.update(_eta(params["sampler"], params.get("eta")))
    extra.update(_churn(params))
    # The plan keeps these only where the run uses them: a schedule bound where a schedule of
    # the run takes it, the skipping of the negative prompt's pass where a pass has one,
    # UniPC's order and variant where a pass runs UniPC.
    for labels in (BOUND_LABELS, UNCOND_SKIP_LABELS, UNIPC_LABELS):
        extra.update({label: params[name] for name, label in labels.items() if params.get(name)})
    if params.get("extra_noise"):
        extra["Extra noise"] = params["extra_noise"]  # A1111's label (img2img, hires pass)
    if params.get("mask_image"):
        extra.update(_mask_labels(params))
    if params.get("inpaint_mask_weight", 1.0) != 1.0:  # kept for inpainting models only
        extra["Conditional mask weight"] = params["inpaint_mask_weight"]  # A1111's label
    if params.get("discard_penultimate_sigma") and not sampler_discards(params["sampler"], False):
        extra["Discard penultimate sigma"] = True  # A1111's label, where the option changed it
    if params.get("sgm_noise_multiplier"):
        extra["SGM noise multiplier"] = True  # A1111's label (kept for txt2img k-samplers only)
    if params.get("noise_seed_delta") and _draws_per_step(params):
        extra["ENSD"] = params["noise_seed_delta"]  # A1111's label
    tiling = params.get("tiling")
    if tiling is True:
        extra["Tiling"] = True  # as A1111 writes it
    elif tiling in ("x", "y"):  # one axis, as A1111's asymmetric tiling extension writes it
        extra.update({"Tile X": tiling == "x", "Tile Y": tiling == "y"})
    if params.get("rng") in ("cpu", "nv"):
        # A1111's randn_source, written where it is not its default (GPU)
        extra["RNG"] = params["rng"].upper()
    return extra or None


def _mask_labels(params: dict[str, Any]) -> dict[str, Any]:
    """An inpainting's area and masked content, as A1111 writes them: ``Inpaint area`` and
    ``Masked area padding`` for only masked, ``Masked content`` other than original."""
    labels: dict[str, Any] = {}
    if params.get("inpaint_area") == "masked":
        labels["Inpaint area"] = "Only masked"
        labels["Masked area padding"] = params.get("inpaint_padding", 0)
    content = params.get("masked_content", "original")
    if content != "original":
        labels["Masked content"] = content.replace("_", " ")  # fill, latent noise, ...
    return labels


def _eta(sampler: str, eta: float | None) -> dict[str, float]:
    """A1111's ``Eta`` (ancestral and SDE samplers, default 1) or ``Eta DDIM`` (default 0),
    written where the request's differs from the sampler's default."""
    default = eta_default(sampler)
    if eta is None or default is None or eta == default:
        return {}
    return {"Eta DDIM" if default == 0 else "Eta": eta}


def _draws_per_step(params: dict[str, Any]) -> bool:
    """Whether a sampler of the run draws noise after the start (what ENSD changes): one with
    eta above 0, or sigma churn."""
    hires = params.get("hires") or {}
    for sampler in filter(None, (params["sampler"], hires.get("sampler"))):
        default = eta_default(sampler)
        eta = params.get("eta")
        if default is not None and (default if eta is None else eta) > 0:
            return True
    return bool(params.get("s_churn"))


def _churn(params: dict[str, Any]) -> dict[str, float]:
    """A1111's ``Sigma churn``/``tmin``/``tmax``/``noise``, each where it is not its default
    (the plan has them only where a sampler of the request takes churn)."""
    return {
        label: params[name]
        for name, label in CHURN_LABELS.items()
        if params.get(name, CHURN_OFF[name]) != CHURN_OFF[name]
    }


def _pass_extra(params: dict[str, Any]) -> dict[str, Any] | None:
    """Denoising strength of img2img; A1111's hires fix keys (Size stays the first pass's)."""
    if params.get("init_image"):
        img2img: dict[str, Any] = {"Denoising strength": params.get("strength")}
        multiplier = params.get("noise_multiplier", 1.0)
        if multiplier != 1.0:  # as A1111 writes it: only where it is not 1
            img2img["Noise multiplier"] = multiplier
        sd_upscale = params.get("sd_upscale")
        if sd_upscale:
            # A1111's SD upscale script names its settings; Size stays the tile's.
            upscaler = sd_upscale["upscaler"]
            img2img["SD upscale overlap"] = sd_upscale["overlap"]
            labels = {**UPSCALER_LABELS, "none": "None"}
            img2img["SD upscale upscaler"] = labels.get(upscaler, upscaler)
        return {**img2img, **_image_steps(params, "img2img")}
    hires = params.get("hires")
    if not hires:
        return None
    extra: dict[str, Any] = {
        "Denoising strength": hires["strength"],
        "Hires upscale": f"{hires['width'] / params['width']:g}",
        "Hires resize": f"{hires['width']}x{hires['height']}",
        "Hires steps": hires.get("steps") or None,
        "Hires upscaler": UPSCALER_LABELS.get(hires["upscaler"], hires["upscaler"]),
        "Hires sampler": sampler_label(hires["sampler"]) if hires.get("sampler") else None,
        "Hires schedule type": schedule_label(hires["schedule"])
        if hires.get("schedule") not in (None, params.get("schedule"))
        else None,
        "Hires prompt": hires.get("prompt"),
        "Hires negative prompt": hires.get("negative_prompt"),
        "Hires CFG Scale": hires.get("cfg_scale"),
        **_image_steps(params, "hires"),
    }
    return {key: value for key, value in extra.items() if value is not None}


def _image_steps(params: dict[str, Any], run: str) -> dict[str, str]:
    """``Img2img steps`` where the run counts its steps other than A1111 does for that pass
    (img2img ``a1111``, the hires pass ``exact``), so that the text pasted back redraws it."""
    mode = params.get("img2img_steps", "strength")
    return {} if mode == A1111_IMAGE_STEPS[run] else {IMAGE_STEPS_LABEL: mode}
