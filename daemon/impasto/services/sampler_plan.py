"""A request's sampler settings as the plan takes them: the sampler and schedule by any
name, and eta, sigma churn, the schedule's bounds and the skipping of the negative prompt's
pass only where a sampler, schedule or guidance of the request (its own, or its hires pass's)
uses them."""

from __future__ import annotations

from typing import Any

from impasto.engine.schedulers import (
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    churn_samplers,
    eta_samplers,
    find_sampler_and_schedule,
    sampler_eta,
    sampler_schedules,
    schedule_for_model,
    sigma_samplers,
    unipc_samplers,
)
from impasto.engine.validation import (
    check_color_correction,
    check_image_steps,
    check_latent_resize,
    check_mask_weight,
)
from impasto.services.errors import FieldError, engine_rules
from impasto.services.model_entry import ModelEntry
from impasto.wire import (
    BOUND_FIELDS,
    CHURN_FIELDS,
    CHURN_OFF,
    LIMITS,
    UNCOND_SKIP_FIELDS,
    UNIPC_FIELDS,
    GenerateRequest,
    HiresRequest,
    ResolvedHires,
    ResolvedPlan,
)


def _used_by(sampler: str, hires: ResolvedHires | None) -> list[str]:
    """The samplers that run: the request's, and its hires pass's where it names another."""
    return [sampler, *([hires.sampler] if hires and hires.sampler else [])]


def resolve_sampler(field: str, name: str) -> tuple[str, str | None]:
    """The sampler id of any of its names, and the schedule of a pre-1.9 A1111 name ("DPM++ 2M
    Karras"), else None; FieldError naming ``field`` for a name that means no sampler."""
    found = find_sampler_and_schedule(name)
    if found is None:
        allowed = ", ".join(SAMPLER_SPECS)
        raise FieldError(field, f"unknown sampler {name!r}; one of {allowed}")
    return found


def check_schedule(field: str, sampler: str, schedule: str, sdxl: bool) -> str:
    """``schedule`` as ``sampler`` runs it on this kind of model; FieldError naming ``field``
    when the sampler lacks it."""
    if schedule not in sampler_schedules(sampler):
        allowed = ", ".join(sampler_schedules(sampler))
        raise FieldError(field, f"{sampler} supports the schedules: {allowed}")
    return schedule_for_model(schedule, sdxl)


def sampler_and_schedule(request: GenerateRequest, model: ModelEntry) -> tuple[str, str]:
    """The first pass's sampler id and schedule: an explicit schedule wins over one in a
    combined name ("DPM++ 2M Karras"), as in A1111 1.9 and later; the model's default schedule
    only where the sampler has it. FieldError for a sampler or schedule that cannot be."""
    defaults = model.defaults
    sampler, named = resolve_sampler("sampler", request.sampler or defaults.sampler)
    chosen = request.schedule or named
    schedule = chosen or defaults.schedule
    if chosen is None and schedule not in sampler_schedules(sampler):
        schedule = "default"
    field = "sampler" if request.schedule is None and named else "schedule"
    return sampler, check_schedule(field, sampler, schedule, model.family.startswith("sdxl"))


def hires_sampler_and_schedule(
    hires: HiresRequest, first_sampler: str, first_schedule: str, sdxl: bool
) -> tuple[str | None, str]:
    """The hires pass's sampler id (None: the first pass's) and schedule: its own, else one in
    a combined sampler name, else the first pass's where its sampler has it, else default."""
    sampler, named = (None, None)
    if hires.sampler is not None:
        sampler, named = resolve_sampler("hires.sampler", hires.sampler)
    runs_with = sampler or first_sampler
    if hires.schedule is not None:
        return sampler, check_schedule("hires.schedule", runs_with, hires.schedule, sdxl)
    if named is not None:
        return sampler, check_schedule("hires.sampler", runs_with, named, sdxl)
    if first_schedule in sampler_schedules(runs_with):
        return sampler, first_schedule
    return sampler, "default"


def checked_eta(eta: float | None, sampler: str, hires: ResolvedHires | None) -> float | None:
    """``eta`` where a sampler of this request adds noise per step to use it, else a 422."""
    if eta is None or any(sampler_eta(name, eta) is not None for name in _used_by(sampler, hires)):
        return eta
    takes = ", ".join(eta_samplers())
    raise FieldError(
        "eta", f"{sampler} adds no noise per step, so has no eta; samplers with eta: {takes}"
    )


def checked_churn(
    request: GenerateRequest, sampler: str, hires: ResolvedHires | None
) -> dict[str, Any]:
    """The sigma churn settings where a sampler of this request takes churn; one set for a
    request whose samplers have none is a 422 naming it."""
    values = {name: getattr(request, name) for name in CHURN_FIELDS}
    changed = [name for name in CHURN_FIELDS if values[name] != CHURN_OFF[name]]
    if not changed or any(name in churn_samplers() for name in _used_by(sampler, hires)):
        return values
    takes = ", ".join(churn_samplers())
    raise FieldError(changed[0], f"{sampler} has no sigma churn; the samplers with churn: {takes}")


def checked_bounds(
    request: GenerateRequest, schedule: str, hires: ResolvedHires | None
) -> dict[str, Any]:
    """The schedule bounds where a schedule of this request takes them: ``sigma_min`` and
    ``sigma_max`` where it spans a range, ``rho`` where it has one; one set for a request whose
    schedules do not is a 422 naming it."""
    schedules = [schedule, *([hires.schedule] if hires and hires.schedule else [])]
    values = {name: getattr(request, name) for name in BOUND_FIELDS}
    for name in BOUND_FIELDS:
        if values[name] is None or takes_bound(schedules, name):
            continue
        allowed = ", ".join(s for s in SCHEDULE_SPECS if takes_bound([s], name))
        raise FieldError(
            name, f"the {schedule} schedule has no {name}; the schedules with one: {allowed}"
        )
    return values


def takes_bound(schedules: list[str], field: str) -> bool:
    """Whether one of ``schedules`` uses bound ``field``: ``rho`` where it has one, the others
    where it spans a range."""
    specs = [SCHEDULE_SPECS[name] for name in schedules if name in SCHEDULE_SPECS]
    return any(spec.rho > 0 if field == "rho" else spec.sigma_range for spec in specs)


def checked_uncond_skip(
    request: GenerateRequest, cfg_scale: float, hires: ResolvedHires | None, cache_interval: int
) -> dict[str, Any]:
    """The settings that leave the negative prompt's pass out of some steps, where a pass of
    the request runs one (classifier-free guidance, CFG above 1) and DeepCache is off; else a
    422 naming the setting. ``s_min_uncond_all`` without ``s_min_uncond`` is one too."""
    values = {name: getattr(request, name) for name in UNCOND_SKIP_FIELDS}
    if values["s_min_uncond_all"] and not values["s_min_uncond"]:
        raise FieldError("s_min_uncond_all", "applies below s_min_uncond: set that above 0 too")
    on = [name for name in ("s_min_uncond", "skip_early_cond") if values[name]]
    if not on:
        return values
    if not runs_negative_pass(cfg_scale, hires.cfg_scale if hires else None):
        raise FieldError(
            on[0],
            f"leaves out the negative prompt's pass, which cfg_scale {cfg_scale:g} (1 or less) "
            "does not run: raise cfg_scale above 1, or leave this at 0",
        )
    if cache_interval > 1:
        raise FieldError(on[0], "does not go with DeepCache (cache_interval above 1)")
    return values


def checked_discard(discard: bool, sampler: str, hires: ResolvedHires | None) -> bool:
    """``discard_penultimate_sigma`` where a sampler of the request takes it, else a 422."""
    if not discard or discards_any(_used_by(sampler, hires)):
        return discard
    takes = ", ".join(sigma_samplers())
    raise FieldError(
        "discard_penultimate_sigma",
        f"{sampler} walks timesteps, not sigmas: it has none to discard; the samplers that "
        f"can: {takes}",
    )


def checked_unipc(
    request: GenerateRequest, sampler: str, hires: ResolvedHires | None
) -> dict[str, Any]:
    """UniPC's order and variant where a sampler of the request (its own, its hires pass's) is
    UniPC, else a 422 naming the first one set."""
    values = {name: getattr(request, name) for name in UNIPC_FIELDS}
    on = [name for name, value in values.items() if value is not None]
    if not on or runs_unipc(_used_by(sampler, hires)):
        return values
    takes = ", ".join(unipc_samplers())
    raise FieldError(on[0], f"is UniPC's, and {sampler} runs this request; the samplers: {takes}")


def runs_unipc(samplers: list[str]) -> bool:
    """Whether one of ``samplers`` is UniPC (or a plugin's subclass of it)."""
    return any(name in unipc_samplers() for name in samplers)


def takes_sgm(sampler: str, starts_from_image: bool) -> bool:
    """Whether a run takes the SGM noise multiplier: it starts from pure noise (no init image)
    with a sampler that walks sigmas."""
    return not starts_from_image and sampler in sigma_samplers()


def checked_sgm(sgm: bool, sampler: str, init_image: str | None) -> bool:
    """``sgm_noise_multiplier`` where the run starts from pure noise (no init image) with a
    sampler that walks sigmas, else a 422."""
    if not sgm or takes_sgm(sampler, init_image is not None):
        return sgm
    if init_image is not None:
        raise FieldError(
            "sgm_noise_multiplier",
            "scales a txt2img run's start from pure noise, and this run starts from its "
            "init_image: leave it off",
        )
    takes = ", ".join(sigma_samplers())
    raise FieldError(
        "sgm_noise_multiplier",
        f"{sampler} walks timesteps and starts from unit noise already; the samplers that "
        f"take it: {takes}",
    )


def latent_source_size(size: tuple[int, int]) -> tuple[int, int]:
    """The size an init image is encoded at for a latent resize: its own, down to multiples
    of 8; a 422 naming ``init_image`` out of width's and height's limits."""
    snapped = (size[0] // 8 * 8, size[1] // 8 * 8)
    limits = [LIMITS[side] for side in ("width", "height")]
    if not all(
        (limit.minimum or 0) <= side <= (limit.maximum or 0)
        for limit, side in zip(limits, snapped, strict=True)
    ):
        low, high = limits[0].minimum, limits[0].maximum
        raise FieldError(
            "init_image",
            f"a latent resize encodes it at its own size, {size[0]}x{size[1]}: each side "
            f"{low:g} to {high:g} pixels (or use stretch, crop or fill)",
        )
    return snapped


def check_image_settings(
    request: GenerateRequest, init_image: str | None, inpaint_model: bool, latent: bool = False
) -> None:
    """A 422 for a setting of a run from an image where no pass starts from one: the resize
    mode, the noise multiplier and the colour correction (img2img, inpainting), extra noise,
    the step count and the inpainting mask weight (those, and the hires pass); the weight
    also for a model that is no inpainting model, a ``latent`` resize on one or with a mask,
    and a colour reference without the correction."""
    if request.noise_multiplier != 1.0 and init_image is None:
        message = "scales the noise added to an init_image: send one, or leave it at 1"
        raise FieldError("noise_multiplier", message)
    if request.resize_mode != "stretch" and init_image is None:
        message = "lays out an init_image at width x height: send one, or leave it at stretch"
        raise FieldError("resize_mode", message)
    with engine_rules():
        has_reference = bool(request.color_reference)
        check_color_correction(request.color_correction, init_image is not None, has_reference)
        check_mask_weight(request.inpaint_mask_weight, inpaint_model)
        check_latent_resize(latent, inpaint_model, bool(request.mask_image))
    if init_image is not None or request.hires is not None:
        return
    if request.inpaint_mask_weight != 1.0:
        message = "fades the picture an inpainting model sees; a txt2img run shows it grey: "
        raise FieldError("inpaint_mask_weight", message + "send an init_image, or leave it at 1")
    if request.extra_noise:
        message = "adds noise to an init_image or a hires pass: send one, or leave it at 0"
        raise FieldError("extra_noise", message)
    if request.img2img_steps != "strength":
        message = "counts the steps of a run from an init_image or of a hires pass: send one, "
        raise FieldError("img2img_steps", message + "or leave it at strength")


def checked_image_steps(plan: ResolvedPlan) -> None:
    """A 422 on the strength whose ``exact`` steps would lay a schedule out for more steps
    than a model has timesteps (steps / strength above 1000)."""
    runs = []
    if plan.init_image is not None:
        runs.append(("strength", plan.steps, plan.strength))
    if plan.hires is not None:
        runs.append(("hires.strength", plan.hires.steps or plan.steps, plan.hires.strength))
    for field, steps, strength in runs:
        with engine_rules():
            check_image_steps(steps, strength, plan.img2img_steps, field)


def runs_negative_pass(cfg_scale: float, hires_cfg_scale: float | None) -> bool:
    """Whether a pass of a request runs classifier-free guidance's negative pass: the first at
    ``cfg_scale``, or the hires pass at its own (None: the first pass's), above 1."""
    return max(cfg_scale, hires_cfg_scale or 0) > 1


def discards_any(samplers: list[str]) -> bool:
    """Whether one of ``samplers`` has sigmas to discard the next-to-last of."""
    return any(name in sigma_samplers() for name in samplers)
