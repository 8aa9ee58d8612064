"""What ``POST /sdapi/v1/options`` checks: each option a later request reads is checked with
that request's rule (a1111_settings.py), so a bad value is refused where it is set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from impasto.api.compat.a1111_model_settings import checked_vae
from impasto.api.compat.a1111_settings import (
    BACKGROUND_OPTION,
    CLIP_SKIP_OPTION,
    COLOR_CORRECTION_OPTION,
    DISCARD_OPTION,
    EARLY_OPTION,
    ENSD_OPTION,
    EVERY_OPTION,
    EXTRA_NOISE_OPTION,
    FIX_STEPS_OPTION,
    IMAGE_STEPS_OPTION,
    MASK_WEIGHT_OPTION,
    NOISE_MULTIPLIER_OPTION,
    SGM_OPTION,
    UNCOND_OPTION,
    UNIPC_OPTIONS,
    checked_bound,
    checked_churn,
    checked_clip_skip,
    checked_color,
    checked_eta,
    checked_flag,
    checked_image_steps,
    checked_noise_multiplier,
    checked_noise_seed_delta,
    checked_option,
    checked_unipc,
)
from impasto.services.container import Services
from impasto.wire import BOUND_FIELDS, CHURN_FIELDS


def _churn_check(name: str) -> Callable[[Services, object, str], object]:
    return lambda _, value, field: checked_churn(name, value, field)


def _bound_check(name: str) -> Callable[[Services, object, str], object]:
    return lambda _, value, field: checked_bound(name, value, field)


def _unipc_check(native: str) -> Callable[[Services, object, str], object]:
    return lambda _, value, field: checked_unipc(native, value, field)


def _number_check(native: str) -> Callable[[Services, object, str], object]:
    return lambda _, value, field: checked_option(native, value, field)


OPTION_CHECKS: dict[str, Callable[[Services, object, str], object]] = {
    CLIP_SKIP_OPTION: lambda _, value, field: checked_clip_skip(value, field),
    "eta_ancestral": lambda _, value, field: checked_eta(value, field),
    "eta_ddim": lambda _, value, field: checked_eta(value, field),
    NOISE_MULTIPLIER_OPTION: lambda _, value, field: checked_noise_multiplier(value, field),
    **{name: _churn_check(name) for name in CHURN_FIELDS},
    **{name: _bound_check(name) for name in BOUND_FIELDS},
    UNCOND_OPTION: _number_check(UNCOND_OPTION),
    EARLY_OPTION: _number_check(EARLY_OPTION),
    EXTRA_NOISE_OPTION: _number_check("extra_noise"),
    MASK_WEIGHT_OPTION: _number_check("inpaint_mask_weight"),
    EVERY_OPTION: lambda _, value, field: checked_flag(value, field),
    DISCARD_OPTION: lambda _, value, field: checked_flag(value, field),
    SGM_OPTION: lambda _, value, field: checked_flag(value, field),
    FIX_STEPS_OPTION: lambda _, value, field: checked_flag(value, field),
    IMAGE_STEPS_OPTION: lambda _, value, field: checked_image_steps(value, field),
    COLOR_CORRECTION_OPTION: lambda _, value, field: checked_flag(value, field),
    BACKGROUND_OPTION: lambda _, value, field: checked_color(value, field),
    **{option: _unipc_check(native) for native, option in UNIPC_OPTIONS.items()},
    ENSD_OPTION: lambda _, value, field: checked_noise_seed_delta(value, field),
    "sd_vae": checked_vae,
}
"""The options a later request reads and would refuse: ``POST /options`` checks each with the
same rule, so a bad value is refused where it is set, not in every request after it."""


def check_options(services: Services, options: dict[str, Any]) -> None:
    """CompatError for the first option in ``options`` that a request would refuse (blocking:
    ``sd_vae`` lists the models folder)."""
    for key, check in OPTION_CHECKS.items():
        if key in options:
            check(services, options[key], key)
