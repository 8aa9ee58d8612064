"""Check a GenerationParams before any session runs; errors name the field and allowed values.

The limits are the request schema's (``impasto.wire.LIMITS``), read here, never restated.
"""

from __future__ import annotations

import math
from typing import Protocol

from PIL import Image

from impasto.engine.noise import RNGS
from impasto.engine.pipelines.image_steps import image_steps
from impasto.engine.schedulers import SAMPLERS, sampler_schedules
from impasto.engine.seamless import tiling_axes
from impasto.engine.types import AppliedLora, GenerationParams, InvalidRequestError
from impasto.engine.upscale_latents import UPSCALERS
from impasto.wire import BOUND_FIELDS, CHURN_FIELDS, LIMITS

INIT_IMAGE_MODES = ("RGB", "RGBA", "L")
SEED_RESIZE_FIELDS = ("seed_resize_from_width", "seed_resize_from_height")
MASK_MODES = ("L", "1")


def _bounds(name: str) -> tuple[float, float]:
    limit = LIMITS[name]
    assert limit.minimum is not None and limit.maximum is not None
    return limit.minimum, limit.maximum


def _check(field: str, value: object, name: str | None = None, *, integer: bool) -> None:
    low, high = _bounds(name or field)
    _check_range(field, value, low, high, integer=integer)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_size(field: str, value: object) -> None:
    low, high = _bounds(field)
    multiple = LIMITS[field].multiple_of or 1
    allowed = f"a multiple of {multiple} from {low:g} to {high:g}"
    if not _is_int(value):
        raise InvalidRequestError(field, f"must be an integer, {allowed}")
    assert isinstance(value, int)
    if not low <= value <= high or value % multiple:
        raise InvalidRequestError(field, f"{value} is not {allowed}")


def _check_range(field: str, value: object, low: float, high: float, integer: bool) -> None:
    kind = "an integer" if integer else "a number"
    ok = _is_int(value) if integer else _is_number(value)
    if not ok or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise InvalidRequestError(field, f"{value!r} is not {kind} from {low:g} to {high:g}")


MAX_LAID_STEPS = 1000
"""The most steps a schedule is laid out for: the models' training timesteps."""


def check_mask_weight(weight: float, inpaint_unet: bool) -> None:
    """InvalidRequestError for an inpainting mask weight other than 1 on a model whose UNet is
    no 9-channel inpainting UNet (nothing there is shown a picture)."""
    if weight != 1.0 and not inpaint_unet:
        message = "is for inpainting models (a 9-channel UNet), and this model is none"
        raise InvalidRequestError("inpaint_mask_weight", message + ": leave it at 1")


def check_latent_resize(latent_resize: bool, inpaint_unet: bool, masked: bool) -> None:
    """InvalidRequestError (on ``resize_mode``) for a latent resize with a mask, which is laid
    out in pixels, or on a 9-channel inpainting UNet, which is shown the picture itself at the
    run's size."""
    if latent_resize and masked:
        message = "latent resizes the latents of an img2img run; a mask is laid out in pixels: "
        raise InvalidRequestError("resize_mode", message + "use stretch, crop or fill")
    if latent_resize and inpaint_unet:
        message = "an inpainting model sees the picture at width x height, so it is laid out in "
        raise InvalidRequestError("resize_mode", message + "pixels: use stretch, crop or fill")


def check_refiner(refiner: bool, masked: bool) -> None:
    """A refiner with a mask: the inpaint hooks (mask channels, blending) belong to the base
    model's run, so the refiner's steps could not keep the picture outside the mask."""
    if refiner and masked:
        message = "inpainting cannot use a refiner: send it without mask_image, or no refiner"
        raise InvalidRequestError("refiner", message)


def check_color_correction(correction: bool, has_init_image: bool, has_reference: bool) -> None:
    """InvalidRequestError for a colour correction with no init image (nothing to match) or a
    colour reference without the correction that reads it."""
    if correction and not has_init_image:
        message = "matches the result's colours to an init_image's: send one, or leave it false"
        raise InvalidRequestError("color_correction", message)
    if has_reference and not correction:
        message = "is what color_correction matches colours to: set it true, or leave this out"
        raise InvalidRequestError("color_reference", message)


def check_image_steps(steps: int, strength: float, mode: str, field: str) -> None:
    """InvalidRequestError on ``field`` (the strength) where ``exact`` steps would lay the
    schedule out for more than ``MAX_LAID_STEPS`` (steps / strength)."""
    laid = image_steps(steps, strength, mode)[0]
    if laid > MAX_LAID_STEPS:
        lowest = steps / MAX_LAID_STEPS
        raise InvalidRequestError(
            field,
            f"exact steps lay the schedule out for {steps} / {strength:g} = {laid} steps, at "
            f"most {MAX_LAID_STEPS}: raise it to {lowest:.3g} or more, or run fewer steps",
        )


def _check_choice(field: str, value: object) -> None:
    choices = LIMITS[field].choices or []
    if value not in choices:
        raise InvalidRequestError(field, f"{value!r} is not one of {', '.join(choices)}")


def _check_image(
    field: str, image: object, modes: tuple[str, ...], size: tuple[int, int] | None
) -> None:
    if not isinstance(image, Image.Image):
        raise InvalidRequestError(field, "must be a PIL image")
    if image.mode not in modes:
        raise InvalidRequestError(
            field, f"mode {image.mode} is not allowed; use one of: {', '.join(modes)}"
        )
    if size is not None and image.size != size:
        raise InvalidRequestError(
            field,
            f"size {image.size[0]}x{image.size[1]} must equal width x height {size[0]}x{size[1]}",
        )


def _check_latent_resize(params: GenerationParams) -> tuple[int, int]:
    """The init image's own size, which a latent resize keeps: sides multiples of 8 within
    width's and height's limits, and no mask (a mask is laid out in pixels)."""
    if params.init_image is None:
        raise InvalidRequestError("resize_mode", "latent resizes an init_image's latents: send one")
    check_latent_resize(True, False, params.mask_image is not None)
    if params.sd_upscale is not None:
        raise InvalidRequestError("resize_mode", "SD upscale keeps the image's own size")
    size = getattr(params.init_image, "size", (0, 0))
    for field, side in zip(("width", "height"), size, strict=True):
        try:
            _check_size(field, side)
        except InvalidRequestError as exc:
            message = (
                f"with a latent resize it is encoded at its own size: its {field} {exc.message}"
            )
            raise InvalidRequestError("init_image", message) from None
    return size


def validate_params(params: GenerationParams, *, has_vae_encoder: bool = True) -> None:
    """Raise InvalidRequestError for the first bad field of ``params``."""
    if not isinstance(params.prompt, str):
        raise InvalidRequestError("prompt", "must be a string")
    if not isinstance(params.negative_prompt, str):
        raise InvalidRequestError("negative_prompt", "must be a string")
    _check_size("width", params.width)
    _check_size("height", params.height)
    _check("steps", params.steps, integer=True)
    _check("cfg_scale", params.cfg_scale, integer=False)
    _check("batch_size", params.batch_size, integer=True)
    _check("strength", params.strength, integer=False)
    _check("noise_multiplier", params.noise_multiplier, integer=False)
    _check("extra_noise", params.extra_noise, integer=False)
    _check("inpaint_mask_weight", params.inpaint_mask_weight, integer=False)
    _check_range("preview_every", params.preview_every, 0, _bounds("steps")[1], integer=True)
    _check("clip_skip", params.clip_skip, integer=True)
    _check("refiner_switch", params.refiner_switch, integer=False)
    _check_range(
        "cache_interval", params.cache_interval, 0, _bounds("cache_interval")[1], integer=True
    )
    for field in ("decoder", "inpaint_area", "masked_content"):
        _check_choice(field, getattr(params, field))
    _check("inpaint_padding", params.inpaint_padding, integer=True)
    if params.unipc_order is not None:
        _check("unipc_order", params.unipc_order, integer=True)
    if params.unipc_variant is not None:
        _check_choice("unipc_variant", params.unipc_variant)
    _check_choice("img2img_steps", params.img2img_steps)
    if params.init_image is not None:
        check_image_steps(params.steps, params.strength, params.img2img_steps, "strength")
    check_refiner(params.refiner is not None, params.mask_image is not None)
    for lora in params.loras:
        for weight in AppliedLora(*lora)[1:]:
            if weight is not None:
                _check("loras", weight, "lora_weight", integer=False)
    low, high = _bounds("seed")
    for field in ("seed", "subseed"):
        value = getattr(params, field)
        if value is not None and (not _is_int(value) or not low <= value <= high):
            raise InvalidRequestError(field, f"{value!r} is not -1 (random) or 0..{int(high)}")
    _check("subseed_strength", params.subseed_strength, integer=False)
    _check("noise_seed_delta", params.noise_seed_delta, integer=True)
    if params.sampler not in SAMPLERS:
        raise InvalidRequestError(
            "sampler", f"unknown sampler {params.sampler!r}; use one of: {', '.join(SAMPLERS)}"
        )
    if params.rng not in RNGS:
        raise InvalidRequestError("rng", f"{params.rng!r} is not one of {', '.join(RNGS)}")
    if params.eta is not None:
        _check("eta", params.eta, integer=False)
    for field in (*CHURN_FIELDS, *BOUND_FIELDS):
        if getattr(params, field) is not None:
            _check(field, getattr(params, field), integer=False)
    _check("s_min_uncond", params.s_min_uncond, integer=False)
    _check("skip_early_cond", params.skip_early_cond, integer=False)
    if (params.s_min_uncond or params.skip_early_cond) and params.cache_interval > 1:
        field = "s_min_uncond" if params.s_min_uncond else "skip_early_cond"
        message = "skipping the negative prompt's pass does not go with DeepCache (cache_interval)"
        raise InvalidRequestError(field, message)
    if params.seed_resize_from is not None:
        for field, value in zip(SEED_RESIZE_FIELDS, params.seed_resize_from, strict=True):
            _check(field, value, integer=True)
            if value <= 0:
                raise InvalidRequestError(field, "must be above 0 (leave both out for no resize)")
    schedules = sampler_schedules(params.sampler)
    if params.schedule not in schedules:
        raise InvalidRequestError(
            "schedule",
            f"{params.schedule!r} is not supported by {params.sampler}; "
            f"use one of: {', '.join(schedules)}",
        )
    size = (params.width, params.height)
    if params.mask_image is not None and params.init_image is None:
        raise InvalidRequestError("init_image", "inpainting needs an init image with the mask")
    if params.init_image is not None and masked_area(params):
        # Only the crop around the mask is scaled to width x height; the image keeps its size.
        size = params.init_image.size
    if params.latent_resize:
        size = _check_latent_resize(params)
    has_reference = params.color_reference is not None
    check_color_correction(params.color_correction, params.init_image is not None, has_reference)
    if params.color_reference is not None:
        _check_image("color_reference", params.color_reference, INIT_IMAGE_MODES, None)
    if params.init_image is not None:
        _check_image("init_image", params.init_image, INIT_IMAGE_MODES, size)
        if not has_vae_encoder:
            raise InvalidRequestError(
                "init_image", "this model has no vae_encoder; img2img and inpaint need one"
            )
    if params.mask_image is not None:
        _check_image("mask_image", params.mask_image, MASK_MODES, size)
    if params.sgm_noise_multiplier and params.init_image is not None:
        raise InvalidRequestError(
            "sgm_noise_multiplier",
            "scales a txt2img run's start from pure noise: send it without init_image",
        )
    if params.hires is not None:
        _check_hires(params)


def _check_hires(params: GenerationParams) -> None:
    """The second pass: a txt2img run, a known upscaler, a size from the first pass's up."""
    hires = params.hires
    assert hires is not None
    if params.init_image is not None:
        raise InvalidRequestError("hires", "hires fix is for txt2img: send it without init_image")
    if hires.upscaler not in UPSCALERS and hires.upscaler_model is None:
        raise InvalidRequestError(
            "hires.upscaler",
            f"unknown upscaler {hires.upscaler!r}; use one of: {', '.join(UPSCALERS)}",
        )
    multiple = LIMITS["width"].multiple_of or 1
    high = _bounds("width")[1]
    for field, value, base in (
        ("hires.width", hires.width, params.width),
        ("hires.height", hires.height, params.height),
    ):
        if not _is_int(value) or value % multiple or not base <= value <= high:
            raise InvalidRequestError(
                field,
                f"{value!r} is not a multiple of {multiple} from {base} (the first pass's size) "
                f"to {high:g}",
            )
    _check_range("hires.steps", hires.steps, 0, _bounds("steps")[1], integer=True)
    _check_range("hires.strength", hires.strength, 0, 1, integer=False)
    steps = hires.steps or params.steps
    check_image_steps(steps, hires.strength, params.img2img_steps, "hires.strength")
    if hires.cfg_scale is not None:
        _check("hires.cfg_scale", hires.cfg_scale, "cfg_scale", integer=False)
    if hires.sampler is not None and hires.sampler not in SAMPLERS:
        raise InvalidRequestError(
            "hires.sampler", f"unknown sampler {hires.sampler!r}; use one of: {', '.join(SAMPLERS)}"
        )


def masked_area(params: GenerationParams) -> bool:
    """Whether only the part around the mask is inpainted (``inpaint_area="masked"``)."""
    return params.inpaint_area == "masked" and params.mask_image is not None


class _Size(Protocol):
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


class TilingRequest(Protocol):
    """What seamless tiling's limits read: engine parameters, or the services' resolved plan
    (the same names), so both check one rule."""

    tiling: bool | str
    width: int
    height: int
    cache_interval: int
    decoder: str
    inpaint_area: str

    @property
    def refiner(self) -> object: ...
    @property
    def sd_upscale(self) -> object: ...
    @property
    def hires(self) -> _Size | None: ...


def check_tiling(params: TilingRequest, multiple: int) -> None:
    """Seamless tiling's limits: no part that cannot wrap, and sizes the UNet divides whole
    (a canvas padded and cropped would not wrap)."""
    axes = tiling_axes(params.tiling)
    if not axes:
        return
    conflicts = (
        ("refiner", params.refiner is not None, "the refiner"),
        ("cache_interval", params.cache_interval > 1, "DeepCache (cache_interval above 1)"),
        ("decoder", params.decoder == "fast", "the fast decoder"),
        ("sd_upscale", params.sd_upscale is not None, "SD upscale"),
        ("inpaint_area", params.inpaint_area == "masked", 'inpaint_area "masked"'),
    )
    # Name the request's own value: a one-axis "x" is refused as well as true.
    sent = "true" if params.tiling is True else f'"{params.tiling}"'
    for field, present, what in conflicts:
        if present:
            raise InvalidRequestError(
                field, f"{what} cannot run with seamless tiling (tiling: {sent})"
            )
    # Only a wrapping side must be whole: the other is padded and cropped as without tiling.
    sizes = [("width", params.width, "x"), ("height", params.height, "y")]
    if params.hires is not None:
        hires = params.hires
        sizes += [("hires.width", hires.width, "x"), ("hires.height", hires.height, "y")]
    for field, value, axis in sizes:
        if axis in axes and value % multiple:
            raise InvalidRequestError(
                field,
                f"{value} is not a multiple of {multiple}, which seamless tiling needs on this "
                "model (its UNet would otherwise draw on a larger canvas and crop it)",
            )
