"""AUTOMATIC1111's settings as native request fields: each from this request's
``override_settings``, else from the options a client set with ``POST /options``."""

from __future__ import annotations

import logging
from typing import Any

from PIL import ImageColor

from impasto.api.compat.a1111_defaults import A1111_DEFAULT_OPTIONS
from impasto.api.compat.a1111_schemas import Img2ImgRequest, Txt2ImgRequest
from impasto.api.compat.errors import CompatError
from impasto.engine.schedulers import churn_samplers, eta_default
from impasto.services.compat import (
    RNG_SOURCES,
    compat_state,
)
from impasto.services.container import Services
from impasto.wire import BOUND_FIELDS, CHURN_FIELDS, CHURN_OFF, LIMITS

log = logging.getLogger("impasto.api.compat")

CLIP_SKIP_OPTION = "CLIP_stop_at_last_layers"
NOISE_MULTIPLIER_OPTION = "initial_noise_multiplier"
ENSD_OPTION = "eta_noise_seed_delta"
UNCOND_OPTION, EVERY_OPTION, EARLY_OPTION = "s_min_uncond", "s_min_uncond_all", "skip_early_cond"
"""A1111's "Negative Guidance minimum sigma" (and its "all steps") and "Ignore negative prompt
during early sampling" options: the native fields' names."""
DISCARD_OPTION = "always_discard_next_to_last_sigma"
SGM_OPTION = "sgm_noise_multiplier"
UNIPC_OPTIONS = {"unipc_order": "uni_pc_order", "unipc_variant": "uni_pc_variant"}
"""A1111's UniPC options by the native fields they set (its skip type and lower-order-final
options change nothing here: the timesteps are the schedule's, the last steps always lower)."""
EXTRA_NOISE_OPTION = "img2img_extra_noise"
MASK_WEIGHT_OPTION = "inpainting_mask_weight"
FIX_STEPS_OPTION = "img2img_fix_steps"
IMAGE_STEPS_OPTION = "img2img_steps"
"""Impasto's own option (an ``Img2img steps`` label of an infotext sets it): the native
``img2img_steps`` for img2img and the hires pass, over A1111's ways and ``img2img_fix_steps``."""
COLOR_CORRECTION_OPTION = "img2img_color_correction"
BACKGROUND_OPTION = "img2img_background_color"


def _options(services: Services, req: Txt2ImgRequest) -> dict[str, object]:
    """The A1111 options this request runs with: its ``override_settings`` over the set ones."""
    return {**compat_state(services).options, **(req.override_settings or {})}


def eta_setting(
    services: Services, req: Txt2ImgRequest, model: str, sampler: str | None
) -> float | None:
    """A1111's eta for the sampler that runs: the request's ``eta``, else the option its kind
    reads (``eta_ancestral`` for the k-diffusion samplers, ``eta_ddim`` for DDIM; this
    request's override, else the set option); None where the sampler adds no noise per step."""
    default = eta_default(sampler or services.jobs.resolver.model(model).defaults.sampler)
    if default is None:
        return None  # A1111 passes eta only to samplers that take one
    if req.eta is not None:
        return req.eta
    return _option_number(services, req, "eta_ddim" if default == 0 else "eta_ancestral", "eta")


def _option_number(
    services: Services, req: Txt2ImgRequest, option: str, native: str
) -> float | None:
    """The number A1111's ``option`` holds for this request (its ``override_settings``, else
    the set option; None if neither has it), in the ``native`` field's range, else a 422
    naming where it came from."""
    options = _options(services, req)
    if option not in options:
        return None
    return _checked_number(options[option], _option_field(req, option), native)


def _option_field(req: Txt2ImgRequest, option: str) -> str:
    """Where ``option``'s value for this request comes from, as a 422 names it: this request's
    ``override_settings``, else the option set with ``POST /options``."""
    return f"override_settings.{option}" if option in (req.override_settings or {}) else option


def checked_eta(value: object, field: str) -> float:
    """An A1111 eta option's value (``eta_ancestral``, ``eta_ddim``) in the native range."""
    return _checked_number(value, field, "eta")


def _checked_number(value: object, field: str, native: str) -> float:
    """An A1111 option's number in the range of the ``native`` request field, else a 422."""
    limit = LIMITS[native]
    low, high = limit.minimum or 0, limit.maximum or 1
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise CompatError(422, limit.rule, field)
    return float(value)


def checked_noise_multiplier(value: object, field: str) -> float:
    """A1111's ``initial_noise_multiplier`` option in the native ``noise_multiplier`` range."""
    return _checked_number(value, field, "noise_multiplier")


def noise_multiplier_setting(services: Services, req: Txt2ImgRequest) -> float | None:
    """img2img's noise multiplier: the request's ``initial_noise_multiplier``, else the option
    (this request's override, else the set one). None for txt2img, where A1111 has none."""
    if not isinstance(req, Img2ImgRequest):
        return None
    if req.initial_noise_multiplier is not None:
        return req.initial_noise_multiplier
    return _option_number(services, req, NOISE_MULTIPLIER_OPTION, "noise_multiplier")


def checked_noise_seed_delta(value: object, field: str) -> int:
    """A1111's ``eta_noise_seed_delta`` (ENSD) as the native ``noise_seed_delta``: a whole
    number in its range (``31337.0`` counts), else a 422 naming ``field``."""
    limit = LIMITS["noise_seed_delta"]
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise CompatError(422, limit.rule, field)
    number = int(value)  # type: ignore[call-overload]
    if not (limit.minimum or 0) <= number <= (limit.maximum or 0):
        raise CompatError(422, limit.rule, field)
    return number


def noise_seed_delta_setting(services: Services, req: Txt2ImgRequest) -> int:
    """A1111's ENSD option for this request: its ``override_settings``, else the set option."""
    value = _options(services, req).get(ENSD_OPTION, 0)
    return checked_noise_seed_delta(value, _option_field(req, ENSD_OPTION))


def checked_churn(name: str, value: object, field: str) -> float | None:
    """An A1111 sigma churn option (``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``: the
    native fields' names) in the native range; A1111's ``s_tmax`` 0 means no bound (None)."""
    if name == "s_tmax" and value == 0:
        return None
    return _checked_number(value, field, name)


def churn_values(services: Services, req: Txt2ImgRequest) -> dict[str, float | None]:
    """A1111's sigma churn settings for this request, whatever its sampler: each from its
    ``override_settings``, else the request's own field where it is not A1111's default,
    else the option set with ``POST /options``.

    A1111 1.6+ reads these from its options only; a request's own value is honoured too (as
    A1111 before 1.6 did), so a client that sends ``s_churn`` gets it.
    """
    overrides = req.override_settings or {}
    stored = compat_state(services).options
    values: dict[str, float | None] = {}
    for name in CHURN_FIELDS:
        default = A1111_DEFAULT_OPTIONS[name]
        own = getattr(req, name)
        if name in overrides:
            value, field = overrides[name], _option_field(req, name)
        elif own is not None and own != default:
            value, field = own, name
        else:
            value, field = stored.get(name, default), name
        values[name] = checked_churn(name, value, field)
    return values


def churn_for(values: dict[str, float | None], samplers: list[str]) -> dict[str, float | None]:
    """``values`` where one of ``samplers`` takes churn, else the native defaults: A1111
    passes them to Euler, Heun and DPM2 only."""
    if any(name in churn_samplers() for name in samplers):
        return values
    return dict(CHURN_OFF)


def checked_bound(name: str, value: object, field: str) -> float | None:
    """An A1111 schedule option (``sigma_min``, ``sigma_max``, ``rho``: the native fields'
    names) in the native range; A1111's 0 is the schedule's own (None)."""
    if value == 0 and not isinstance(value, bool):
        return None
    return _checked_number(value, field, name)


def bound_values(services: Services, req: Txt2ImgRequest) -> dict[str, float | None]:
    """A1111's schedule options for this request, whatever its schedule: each from its
    ``override_settings``, else the option set with ``POST /options`` (the plan keeps them
    where the request's schedules take them, as A1111 passes them)."""
    options = _options(services, req)
    return {
        name: checked_bound(name, options.get(name, 0), _option_field(req, name))
        for name in BOUND_FIELDS
    }


def uncond_skip_values(services: Services, req: Txt2ImgRequest) -> dict[str, Any]:
    """A1111's settings that leave the negative prompt's pass out of some steps: its
    ``s_min_uncond`` ("Negative Guidance minimum sigma"; from ``override_settings``, else the
    request's own field where above 0, else the option), and the ``s_min_uncond_all`` and
    ``skip_early_cond`` options (override, else the set option)."""
    options = _options(services, req)
    overrides = req.override_settings or {}
    if UNCOND_OPTION not in overrides and req.s_min_uncond:
        min_sigma = _checked_number(req.s_min_uncond, UNCOND_OPTION, UNCOND_OPTION)
    else:
        field = _option_field(req, UNCOND_OPTION)
        min_sigma = _checked_number(options.get(UNCOND_OPTION, 0.0), field, UNCOND_OPTION)
    field = _option_field(req, EARLY_OPTION)
    early = _checked_number(options.get(EARLY_OPTION, 0.0), field, EARLY_OPTION)
    every = checked_flag(options.get(EVERY_OPTION, False), _option_field(req, EVERY_OPTION))
    return {UNCOND_OPTION: min_sigma, EVERY_OPTION: every, EARLY_OPTION: early}


def checked_option(name: str, value: object, field: str) -> float:
    """An A1111 number option named as its native field (``s_min_uncond``, ``skip_early_cond``)
    in that field's range, else a 422 naming ``field``."""
    return _checked_number(value, field, name)


def checked_flag(value: object, field: str) -> bool:
    """An A1111 checkbox option: true or false, else a 422 naming ``field``."""
    if not isinstance(value, bool):
        raise CompatError(422, "must be true or false", field)
    return value


def checked_image_steps(value: object, field: str) -> str:
    """Impasto's ``img2img_steps`` option: one of the native field's modes, else a 422."""
    modes = LIMITS["img2img_steps"].choices or []
    if value not in modes:
        raise CompatError(422, f"must be one of {', '.join(modes)}", field)
    return str(value)


def checked_color(value: object, field: str) -> tuple[int, int, int]:
    """An A1111 colour option (``img2img_background_color``): a colour Pillow reads, as
    A1111 hands it to Pillow ("#ffffff", "#fff", "white", "rgb(255, 255, 255)"), else a 422."""
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        red, green, blue, *_ = ImageColor.getrgb(value)
    except ValueError:
        raise CompatError(422, 'must be a colour such as "#ffffff"', field) from None
    return red, green, blue


def background_setting(services: Services, req: Txt2ImgRequest) -> tuple[int, int, int]:
    """What shows through an init image's transparent parts: A1111's
    ``img2img_background_color`` (this request's override, else the set option; white)."""
    default = A1111_DEFAULT_OPTIONS[BACKGROUND_OPTION]
    value = _options(services, req).get(BACKGROUND_OPTION, default)
    return checked_color(value, _option_field(req, BACKGROUND_OPTION))


def checked_unipc(native: str, value: object, field: str) -> object:
    """A1111's UniPC option for the native field ``native`` in that field's range (order 1 to
    3, variant bh1 or bh2), else a 422 naming ``field``."""
    limit = LIMITS[native]
    if limit.choices:
        if value not in limit.choices:
            raise CompatError(422, limit.rule, field)
        return value
    number = _checked_number(value, field, native)
    if not number.is_integer():
        raise CompatError(422, limit.rule, field)
    return int(number)


def unipc_values(services: Services, req: Txt2ImgRequest) -> dict[str, object]:
    """UniPC's order and variant: the request's ``override_settings``, else the options set with
    ``POST /options``, else A1111's defaults (order 3, bh1); the plan keeps them where UniPC
    runs."""
    options = _options(services, req)
    return {
        native: checked_unipc(
            native,
            options.get(option, A1111_DEFAULT_OPTIONS[option]),
            _option_field(req, option),
        )
        for native, option in UNIPC_OPTIONS.items()
    }


def run_settings(services: Services, req: Txt2ImgRequest) -> dict[str, Any]:
    """A1111's settings that apply where the run uses them (the plan drops the rest, as A1111
    ignores them): the schedule options, the skipping of the negative pass, "Always
    discard next-to-last sigma", "SGM noise multiplier", "Extra noise", UniPC's order and
    variant, how a run from an image counts its steps (A1111's img2img and hires ways),
    "Inpainting conditioning mask strength" (inpainting models) and img2img's colour
    correction."""
    options = _options(services, req)
    field = _option_field(req, DISCARD_OPTION)
    discard = checked_flag(options.get(DISCARD_OPTION, False), field)
    sgm = checked_flag(options.get(SGM_OPTION, False), _option_field(req, SGM_OPTION))
    # A1111 runs hr_second_pass_steps (or steps) exactly in its hires pass, and img2img's
    # int(steps x strength) + 1, or exactly steps with "img2img_fix_steps"; Impasto's own
    # "img2img_steps" option picks any native mode.
    steps_mode, corrected = "exact", False
    if isinstance(req, Img2ImgRequest):
        field = _option_field(req, FIX_STEPS_OPTION)
        fixed = checked_flag(options.get(FIX_STEPS_OPTION, False), field)
        steps_mode = "exact" if fixed else "a1111"
        field = _option_field(req, COLOR_CORRECTION_OPTION)
        corrected = checked_flag(options.get(COLOR_CORRECTION_OPTION, False), field)
    if options.get(IMAGE_STEPS_OPTION) is not None:  # a pasted text's Img2img steps
        field = _option_field(req, IMAGE_STEPS_OPTION)
        steps_mode = checked_image_steps(options[IMAGE_STEPS_OPTION], field)
    field = _option_field(req, EXTRA_NOISE_OPTION)
    extra = _checked_number(options.get(EXTRA_NOISE_OPTION, 0.0), field, "extra_noise")
    field = _option_field(req, MASK_WEIGHT_OPTION)
    weight = options.get(MASK_WEIGHT_OPTION, A1111_DEFAULT_OPTIONS[MASK_WEIGHT_OPTION])
    return {
        **bound_values(services, req),
        **uncond_skip_values(services, req),
        **unipc_values(services, req),
        "discard_penultimate_sigma": discard,
        "sgm_noise_multiplier": sgm,
        "img2img_steps": steps_mode,
        "color_correction": corrected,
        "extra_noise": extra,
        "inpaint_mask_weight": _checked_number(weight, field, "inpaint_mask_weight"),
    }


def rng_setting(services: Services, req: Txt2ImgRequest) -> str:
    """A1111's ``randn_source`` (override, else the set option): "CPU" is torch's CPU generator
    and "NV" its CUDA one (A1111's emulation of it), both reproduced here; "GPU", whose noise
    depends on the card A1111 ran on, runs on Impasto's own noise."""
    source = str(_options(services, req).get("randn_source", "")).upper()
    return RNG_SOURCES.get(source, "pcg64")


def decoder_setting(services: Services, req: Txt2ImgRequest) -> str:
    """A1111's ``sd_vae_decode_method`` ("Full" or "TAESD"; override, else the set option)."""
    return "fast" if _options(services, req).get("sd_vae_decode_method") == "TAESD" else "full"


def checked_clip_skip(value: object, field: str) -> int:
    """A1111's ``CLIP_stop_at_last_layers`` value as Impasto's ``clip_skip`` (1 = no skip)."""
    if isinstance(value, float) and value.is_integer():  # 2.0 from a JSON client
        value = int(value)
    limit = LIMITS["clip_skip"]  # the native field's range, A1111's slider's too (1-12)
    low, high = limit.minimum or 1, limit.maximum or 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise CompatError(422, limit.rule, field)
    return value


def clip_skip_setting(services: Services, req: Txt2ImgRequest, model: str) -> int:
    """Clip skip: this request's ``override_settings``, else the option set with /options.

    A1111 applies it to every model; here a model whose text encoder was exported without
    hidden states skips as many layers as it can (none), as the setting is usually a global
    preference, not something this one request is about.
    """
    overrides = req.override_settings or {}
    if CLIP_SKIP_OPTION in overrides:
        field = _option_field(req, CLIP_SKIP_OPTION)
        wanted = checked_clip_skip(overrides[CLIP_SKIP_OPTION], field)
    else:
        stored = compat_state(services).options.get(CLIP_SKIP_OPTION, 1)
        wanted = checked_clip_skip(stored, CLIP_SKIP_OPTION)
    limit = services.jobs.resolver.model(model or None).clip_skip_max
    if wanted > limit:
        log.info("clip skip %d lowered to %d: %r has no more hidden states", wanted, limit, model)
    return min(wanted, limit)
