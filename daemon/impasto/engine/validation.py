"""Check a GenerationParams before any session runs; errors name the field and allowed values."""

from __future__ import annotations

import math

from PIL import Image

from impasto.engine.schedulers import SAMPLERS, sampler_schedules
from impasto.engine.types import (
    MAX_BATCH,
    MAX_CFG,
    MAX_CLIP_SKIP,
    MAX_LORA_WEIGHT,
    MAX_SIZE,
    MAX_STEPS,
    MIN_BATCH,
    MIN_CFG,
    MIN_CLIP_SKIP,
    MIN_LORA_WEIGHT,
    MIN_SIZE,
    MIN_STEPS,
    SIZE_MULTIPLE,
    GenerationParams,
    InvalidRequestError,
)

INIT_IMAGE_MODES = ("RGB", "RGBA", "L")
MASK_MODES = ("L", "1")
MAX_SEED = 2**63 - 1  # numpy's PCG64 takes any non-negative int; keep seeds in an int64


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _check_size(field: str, value: object) -> None:
    allowed = f"a multiple of {SIZE_MULTIPLE} from {MIN_SIZE} to {MAX_SIZE}"
    if not _is_int(value):
        raise InvalidRequestError(field, f"must be an integer, {allowed}")
    assert isinstance(value, int)
    if not MIN_SIZE <= value <= MAX_SIZE or value % SIZE_MULTIPLE:
        raise InvalidRequestError(field, f"{value} is not {allowed}")


def _check_range(field: str, value: object, low: float, high: float, integer: bool) -> None:
    kind = "an integer" if integer else "a number"
    ok = _is_int(value) if integer else _is_number(value)
    if not ok or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise InvalidRequestError(field, f"{value!r} is not {kind} from {low:g} to {high:g}")


def _check_image(field: str, image: object, modes: tuple[str, ...], size: tuple[int, int]) -> None:
    if not isinstance(image, Image.Image):
        raise InvalidRequestError(field, "must be a PIL image")
    if image.mode not in modes:
        raise InvalidRequestError(
            field, f"mode {image.mode} is not allowed; use one of: {', '.join(modes)}"
        )
    if image.size != size:
        raise InvalidRequestError(
            field,
            f"size {image.size[0]}x{image.size[1]} must equal width x height {size[0]}x{size[1]}",
        )


def validate_params(params: GenerationParams, *, has_vae_encoder: bool = True) -> None:
    """Raise InvalidRequestError for the first bad field of ``params``."""
    if not isinstance(params.prompt, str):
        raise InvalidRequestError("prompt", "must be a string")
    if not isinstance(params.negative_prompt, str):
        raise InvalidRequestError("negative_prompt", "must be a string")
    _check_size("width", params.width)
    _check_size("height", params.height)
    _check_range("steps", params.steps, MIN_STEPS, MAX_STEPS, integer=True)
    _check_range("cfg_scale", params.cfg_scale, MIN_CFG, MAX_CFG, integer=False)
    _check_range("batch_size", params.batch_size, MIN_BATCH, MAX_BATCH, integer=True)
    _check_range("strength", params.strength, 0.0, 1.0, integer=False)
    _check_range("preview_every", params.preview_every, 0, MAX_STEPS, integer=True)
    _check_range("clip_skip", params.clip_skip, MIN_CLIP_SKIP, MAX_CLIP_SKIP, integer=True)
    _check_range("refiner_switch", params.refiner_switch, 0.0, 1.0, integer=False)
    if params.refiner is not None and params.mask_image is not None:
        # The inpaint hooks (mask channels, blending) belong to the base model's run.
        raise InvalidRequestError("refiner", "inpainting cannot use a refiner")
    for _, weight in params.loras:
        _check_range("loras", weight, MIN_LORA_WEIGHT, MAX_LORA_WEIGHT, integer=False)
    if params.seed is not None and (not _is_int(params.seed) or not -1 <= params.seed <= MAX_SEED):
        raise InvalidRequestError("seed", f"{params.seed!r} is not -1 (random) or 0..{MAX_SEED}")
    if params.sampler not in SAMPLERS:
        raise InvalidRequestError(
            "sampler", f"unknown sampler {params.sampler!r}; use one of: {', '.join(SAMPLERS)}"
        )
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
    if params.init_image is not None:
        _check_image("init_image", params.init_image, INIT_IMAGE_MODES, size)
        if not has_vae_encoder:
            raise InvalidRequestError(
                "init_image", "this model has no vae_encoder; img2img and inpaint need one"
            )
    if params.mask_image is not None:
        _check_image("mask_image", params.mask_image, MASK_MODES, size)
