"""AUTOMATIC1111 requests to Impasto jobs, and finished jobs to A1111's response and info JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from PIL import Image, ImageOps

from impasto.api.compat.a1111_model_settings import checkpoint_setting, refiner_setting, vae_setting
from impasto.api.compat.a1111_schemas import Img2ImgRequest, Txt2ImgRequest
from impasto.api.compat.a1111_settings import (
    background_setting,
    churn_for,
    churn_values,
    clip_skip_setting,
    decoder_setting,
    eta_setting,
    noise_multiplier_setting,
    noise_seed_delta_setting,
    rng_setting,
    run_settings,
)
from impasto.api.compat.common import checked_request, decode_base64_image, upload
from impasto.api.compat.errors import CompatError
from impasto.api.compat.samplers_map import (
    UnknownSamplerError,
    explicit_schedule,
    to_impasto,
)
from impasto.engine.noise import offset_seed, resolve_seed
from impasto.engine.upscale_latents import UPSCALER_LABELS
from impasto.formats.fit import fitted
from impasto.formats.masks import binary_mask_of, mask_blurred
from impasto.formats.pixels import flattened
from impasto.services.compat import resolve_checkpoint
from impasto.services.container import Services
from impasto.services.upscalers import UpscalerService
from impasto.wire import Dimension, GenerateRequest, bounds

MAX_ITERATIONS = 100


@dataclass(frozen=True)
class Plan:
    """The Impasto requests one A1111 request became, and what the response echoes."""

    requests: list[GenerateRequest]
    prompt: str
    negative_prompt: str
    model: str
    strength: float | None
    inpaint: bool


A1111_UPSCALERS = {label.lower(): key for key, label in UPSCALER_LABELS.items()}
"""A1111's hires upscaler names (its latent modes and PIL resizes) -> Impasto's upscaler ids."""
RESIZE_MODES = {0: "stretch", 1: "crop", 2: "fill", 3: "latent"}
"""A1111's img2img resize modes (3: the init image's latents are resized, by the services)."""
SAME_SAMPLER = ("", "use same sampler")
SAME_CHECKPOINT = ("", "use same checkpoint")


def _hires(services: Services, req: Txt2ImgRequest, model: str) -> dict[str, Any] | None:
    """A1111's hires fix fields as the native ``hires`` object (txt2img only, as in A1111)."""
    if not req.enable_hr or isinstance(req, Img2ImgRequest):
        return None
    name = (req.hr_upscaler or "Latent").strip()
    models = UpscalerService(services.catalog.models_dir).models()
    upscaler = A1111_UPSCALERS.get(name.lower()) or next(
        (model for model in models if model.lower() == name.lower()), None
    )
    if upscaler is None:
        allowed = ", ".join([*UPSCALER_LABELS.values(), *models])
        raise CompatError(
            422, f"hires upscaler {name!r} is not available; use one of: {allowed}", "hr_upscaler"
        )
    _check_hires_checkpoint(services, req, model)
    sampler, schedule = _hires_sampler(req)
    scale = req.hr_scale or 2.0
    width, height = to_multiple_of_8(req.hr_resize_x), to_multiple_of_8(req.hr_resize_y)
    if (width is None) != (height is None):
        # A1111 keeps the aspect ratio when only one side is given.
        defaults = services.jobs.resolver.model(model).defaults
        base_w = to_multiple_of_8(req.width) or defaults.width
        base_h = to_multiple_of_8(req.height) or defaults.height
        scale = width / base_w if width else (height or base_h) / base_h
        width = height = None
    return {
        "scale": scale,
        "width": width,
        "height": height,
        "upscaler": upscaler,
        "steps": req.hr_second_pass_steps or 0,
        "strength": 0.7 if req.denoising_strength is None else req.denoising_strength,
        "sampler": sampler,
        "schedule": schedule,
        "prompt": req.hr_prompt or None,
        "negative_prompt": req.hr_negative_prompt or None,
        "cfg_scale": req.hr_cfg,
    }


def _check_hires_checkpoint(services: Services, req: Txt2ImgRequest, model: str) -> None:
    """A1111 1.8+'s ``hr_checkpoint_name``: the hires pass on the first pass's model runs; another
    model is refused rather than ignored (Impasto runs both passes on one model)."""
    wanted = (req.hr_checkpoint_name or "").strip()
    if wanted.lower() in SAME_CHECKPOINT or resolve_checkpoint(services, wanted) == model:
        return
    raise CompatError(
        422,
        f"a hires pass on another checkpoint ({wanted!r}) is not supported: both passes run on "
        f"{model!r}; send 'Use same checkpoint' or leave it out",
        "hr_checkpoint_name",
    )


def hires_scheduler(req: Txt2ImgRequest) -> str | None:
    """The A1111 scheduler name of the hires pass: ``hr_scheduler``, the first pass's when it is
    unset or "Use same scheduler" (A1111 sets it so); "Automatic" stays per sampler."""
    return req.scheduler if _same_scheduler(req) else req.hr_scheduler


def _same_scheduler(req: Txt2ImgRequest) -> bool:
    return req.hr_scheduler is None or req.hr_scheduler.strip().lower() == "use same scheduler"


def _hires_sampler(req: Txt2ImgRequest) -> tuple[str | None, str | None]:
    """The hires pass's sampler id and schedule as A1111 1.9+ picks them (None: the first
    pass's). Its scheduler is ``hr_scheduler``, or the first pass's when that is unset or "Use
    same scheduler"; "Automatic" (or empty) is the hires sampler's own (Karras for DPM++ 2M)."""
    hr_sampler = req.hr_sampler_name
    if (hr_sampler or "").strip().lower() in SAME_SAMPLER:
        hr_sampler = None
    first = req.sampler_name or req.sampler_index
    try:
        sampler = to_impasto(hr_sampler).sampler if hr_sampler else None
        named = explicit_schedule(req.scheduler) is not None
        if _same_scheduler(req) and (sampler is None or named):
            # The first pass's schedule, as the plan resolves it for this sampler.
            return sampler, None
        if sampler is None and not first:
            # The model's default sampler in both passes: only a named schedule changes.
            return None, explicit_schedule(req.hr_scheduler)
        return sampler, to_impasto(hr_sampler or first, hires_scheduler(req)).schedule
    except UnknownSamplerError as exc:
        field = "hr_sampler_name" if exc.field == "sampler_name" else "hr_scheduler"
        raise CompatError(422, str(exc), field) from None


def _unknown_sampler(exc: UnknownSamplerError) -> CompatError:
    """A1111's answer to a sampler it does not know: 404 "Sampler not found" (names listed)."""
    if exc.field == "sampler_name":
        return CompatError(404, str(exc))
    return CompatError(422, str(exc), exc.field)


def to_multiple_of_8(pixels: int | None) -> int | None:
    """A1111 accepts any size and makes the image the latent's size: rounded down to 8."""
    return None if not pixels else pixels - pixels % 8


def image_side(pixels: int | None, field: str) -> int | None:
    """``width`` or ``height`` as the image's side (rounded down to 8; 0 or unset: the
    model's default); a 422 naming ``field`` with A1111's rule when it falls outside."""
    side = to_multiple_of_8(pixels)
    limit = bounds(Dimension)  # the native schema's range, stated once there
    if side is not None and not limit["ge"] <= side <= limit["le"]:
        message = (
            f"must be a whole number from {limit['ge']} to {limit['le']} (rounded down to a "
            "multiple of 8, as A1111 does: 70 draws 64 pixels)"
        )
        raise CompatError(422, message, field)
    return side


def _seed_resize(req: Txt2ImgRequest) -> dict[str, int]:
    """A1111's ``seed_resize_from_w``/``_h`` (used when both are above 0) as native fields,
    rounded down to 8 as A1111 divides them by 8."""
    width, height = req.seed_resize_from_w or 0, req.seed_resize_from_h or 0
    if width < 8 or height < 8:
        return {}
    return {
        "seed_resize_from_width": width - width % 8,
        "seed_resize_from_height": height - height % 8,
    }


def _plugins(services: Services, req: Txt2ImgRequest) -> dict[str, Any]:
    """A1111's ``styles`` as the styles plugin's options. Where that plugin does not run, the
    plugin host refuses them (on ``styles``) rather than draw without them."""
    if not req.styles:
        return {}
    if services.plugins is None:
        message = "styles need the styles plugin, and this daemon runs without plugins"
        raise CompatError(422, message, "styles")
    return {"styles": list(req.styles)}


def plan(services: Services, req: Txt2ImgRequest) -> Plan:
    """Check the request and split it into one Impasto request per iteration (n_iter)."""
    wanted_sampler = req.sampler_name or req.sampler_index
    try:
        choice = to_impasto(wanted_sampler, req.scheduler) if wanted_sampler else None
        # Without a sampler the model's default runs, on the model's schedule unless one is named.
        schedule = choice.schedule if choice else explicit_schedule(req.scheduler)
    except UnknownSamplerError as exc:
        raise _unknown_sampler(exc) from None
    iterations = req.n_iter if req.n_iter is not None else 1
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise CompatError(422, f"must be an integer between 1 and {MAX_ITERATIONS}", "n_iter")
    batch = req.batch_size if req.batch_size is not None else 1
    seed = req.seed if req.seed is not None else -1
    if seed == -1 and iterations > 1:
        # A1111 numbers every image of a task from one seed; pick it here so they stay in line.
        seed = resolve_seed(-1)
    variation = req.subseed_strength or 0.0
    subseed = req.subseed if req.subseed is not None and variation > 0 else -1
    if subseed == -1 and variation > 0 and iterations > 1:
        subseed = resolve_seed(-1)  # numbered like the seeds
    strength = None
    if isinstance(req, Img2ImgRequest):
        strength = req.denoising_strength if req.denoising_strength is not None else 0.75
    # Fields left None take the model's defaults in the resolution step.
    model = checkpoint_setting(services, req)
    sampler = choice.sampler if choice else None
    hires = _hires(services, req, model)
    samplers = [sampler or services.jobs.resolver.model(model).defaults.sampler]
    if hires and hires.get("sampler"):
        samplers.append(hires["sampler"])
    base = checked_request(
        {
            # Its <lora:...> tags are read in the resolution step, as any prompt's.
            "prompt": req.prompt or "",
            "negative_prompt": req.negative_prompt or "",
            "model": model,
            "width": image_side(req.width, "width"),
            "height": image_side(req.height, "height"),
            "steps": req.steps,
            "cfg_scale": req.cfg_scale,
            "seed": seed,
            "subseed": subseed,
            "subseed_strength": variation,
            **_seed_resize(req),
            "rng": rng_setting(services, req),
            "noise_seed_delta": noise_seed_delta_setting(services, req),
            "batch_size": batch,
            "sampler": sampler,
            "schedule": schedule,
            "eta": eta_setting(services, req, model, sampler),
            **churn_for(churn_values(services, req), samplers),
            **run_settings(services, req),
            "strength": strength,
            "noise_multiplier": noise_multiplier_setting(services, req),
            "hires": hires,
            "plugins": _plugins(services, req),
            "vae": vae_setting(services, req),
            "decoder": decoder_setting(services, req),
            "clip_skip": clip_skip_setting(services, req, model),
            "refiner": refiner_setting(services, req),
            "refiner_switch": 0.8 if req.refiner_switch_at is None else req.refiner_switch_at,
            "tiling": bool(req.tiling),
            **_inpaint_options(req),
        }
    )
    images: dict[str, str] = {}
    if isinstance(req, Img2ImgRequest):
        width, height = base.width, base.height
        if width is None or height is None:
            defaults = services.jobs.resolver.model(base.model).defaults
            width, height = width or defaults.width, height or defaults.height
        images = prepare_images(services, req, width, height)
    # With its images: which settings the run uses depends on them (extra noise).
    base = msgspec.structs.replace(base, **images)
    base = services.jobs.resolver.without_unused_settings(base)
    requests = []
    for index in range(iterations):
        numbered = seed if seed == -1 else offset_seed(seed, index * batch)
        numbered_subseed = subseed if subseed == -1 else offset_seed(subseed, index * batch)
        requests.append(msgspec.structs.replace(base, seed=numbered, subseed=numbered_subseed))
    return Plan(
        requests=requests,
        prompt=req.prompt or "",
        negative_prompt=req.negative_prompt or "",
        model=base.model or "",
        strength=strength,
        inpaint=bool(images.get("mask_image")),
    )


# A1111's "Masked content" radio, by index (inpainting_fill).
MASKED_CONTENT = ("fill", "original", "latent_noise", "latent_nothing")


def _only_masked(req: Txt2ImgRequest) -> bool:
    """A1111's inpaint area "Only masked" (``inpaint_full_res``, its API's default)."""
    if not isinstance(req, Img2ImgRequest) or not req.mask:
        return False
    return req.inpaint_full_res is None or bool(req.inpaint_full_res)


def _inpaint_options(req: Txt2ImgRequest) -> dict[str, Any]:
    """Inpaint area, padding and masked content for an img2img request with a mask."""
    if not isinstance(req, Img2ImgRequest) or not req.mask:
        return {}
    fill = req.inpainting_fill if req.inpainting_fill is not None else 0
    if not 0 <= fill < len(MASKED_CONTENT):
        raise CompatError(
            422,
            f"must be one of 0..{len(MASKED_CONTENT) - 1} ({', '.join(MASKED_CONTENT)})",
            "inpainting_fill",
        )
    return {
        "inpaint_area": "masked" if _only_masked(req) else "whole",
        "inpaint_padding": req.inpaint_full_res_padding or 0,
        "masked_content": MASKED_CONTENT[fill],
    }


def prepare_images(
    services: Services, req: Img2ImgRequest, width: int, height: int
) -> dict[str, str]:
    """Decode the init image and mask, lay them out, invert and blur the mask; store them as
    uploads (neither stays when the mask is refused)."""
    with services.uploads.new_uploads():
        return _prepared_images(services, req, width, height)


def _prepared_images(
    services: Services, req: Img2ImgRequest, width: int, height: int
) -> dict[str, str]:
    if not req.init_images:
        raise CompatError(422, "img2img needs at least one image in init_images", "init_images")
    size = (width, height)
    if req.resize_mode not in (None, *RESIZE_MODES):
        raise CompatError(
            422,
            "must be 0 (just resize), 1 (crop and resize), 2 (resize and "
            "fill) or 3 (just resize, latent upscale)",
            "resize_mode",
        )
    mode = RESIZE_MODES[req.resize_mode or 0]
    image = decode_base64_image(services, req.init_images[0], "init_images")
    init = flattened(image, background_setting(services, req))
    if _only_masked(req):
        # Only the crop around the mask is scaled to width x height; the image keeps its size.
        size, mode = init.size, "stretch"
    if mode == "latent":
        # The services keep the image's size and resize its latents (a mask: a 422 there).
        out = {"init_image": upload(services, init), "resize_mode": "latent"}
        mode = "stretch"
    else:
        out = {"init_image": upload(services, _fitted(init, mode, size, "init_images"))}
    if req.mask:
        # As A1111 prepares it: read (its alpha, else its grey), made black and white, inverted,
        # blurred at its own size, then laid out like the image.
        decoded = decode_base64_image(services, req.mask, "mask")
        mask = binary_mask_of(decoded, rounded=req.mask_round is not False)
        if req.inpainting_mask_invert:
            mask = ImageOps.invert(mask)
        mask = mask_blurred(mask, *mask_blurs(req))
        out["mask_image"] = upload(services, _fitted(mask, mode, size, "mask"))
    return out


def mask_blurs(req: Img2ImgRequest) -> tuple[int, int]:
    """The mask's blur across and down: ``mask_blur`` sets both, as in A1111."""
    if req.mask_blur is not None:
        return req.mask_blur, req.mask_blur
    return req.mask_blur_x or 0, req.mask_blur_y or 0


def _fitted(image: Image.Image, mode: str, size: tuple[int, int], field: str) -> Image.Image:
    try:
        return fitted(image, mode, size)
    except ValueError as exc:
        raise CompatError(422, str(exc), field) from None


def echo(req: Txt2ImgRequest) -> dict[str, Any]:
    """The request as A1111 echoes it in ``parameters`` (init images and mask left out)."""
    parameters: dict[str, Any] = msgspec.to_builtins(req)
    if isinstance(req, Img2ImgRequest) and not req.include_init_images:
        parameters["init_images"] = None
        parameters["mask"] = None
    return parameters
