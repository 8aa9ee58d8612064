"""The X/Y/Z plot's sampling axes: what a sampler, schedule, sigma, noise or RNG axis sets in a
cell's request, each where A1111 would use it. The axis table: xyz_axes.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from impasto.engine.schedulers import (
    A1111_AUTOMATIC,
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    churn_samplers,
    find_schedule,
    sampler_eta,
)
from impasto.services.compat import RNG_SOURCES
from impasto.services.errors import FieldError
from impasto.services.scripts.base import FIELD, ScriptContext
from impasto.wire import CHURN_OFF, LIMITS, GenerateRequest

Apply = Callable[[ScriptContext, GenerateRequest, Any, list[Any]], GenerateRequest]


def hires_field(name: str) -> Apply:
    """A hires fix field; without hires fix the value changes nothing, as in A1111."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        if req.hires is None:
            return req
        return msgspec.structs.replace(
            req, hires=msgspec.structs.replace(req.hires, **{name: value})
        )

    return apply


def sampler_axis(field: str) -> Apply:
    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        try:
            sampler, schedule = ctx.sampler_names(value, hires=field == "hires")
        except ValueError as exc:
            raise FieldError(FIELD, str(exc)) from None
        if field == "hires":
            req = hires_field("sampler")(ctx, req, sampler, [])
            return hires_field("schedule")(ctx, req, schedule, [])
        # The schedule the request's scheduler gives this sampler (A1111's "Automatic": the
        # sampler's own); a "Schedule type" axis is applied after this one and wins. A sampler
        # without per-step noise leaves eta out, as A1111 passes it only to those that take it.
        eta = sampler_eta(sampler, req.eta)
        req = msgspec.structs.replace(req, sampler=sampler, schedule=schedule, eta=eta)
        # Sigma churn likewise, from the request's A1111 settings, whatever its first sampler.
        churn = ctx.churn if _takes_churn(ctx, req) else CHURN_OFF
        return msgspec.structs.replace(req, **churn)

    return apply


def _takes_churn(ctx: ScriptContext, req: GenerateRequest) -> bool:
    """Whether a sampler of ``req`` (its own or its hires pass's) takes sigma churn."""
    sampler = req.sampler or ctx.services.jobs.resolver.model(req.model).defaults.sampler
    hires = req.hires.sampler if req.hires else None
    return any(name in churn_samplers() for name in (sampler, hires))


def churn_axis(name: str, label: str) -> Apply:
    """A1111's Sigma Churn/min/max/noise axes: where a sampler takes churn (A1111 passes it to
    Euler, Heun and DPM2 only); Sigma max 0 is no bound, as A1111 reads it."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        number = None if name == "s_tmax" and float(value) == 0 else in_range(label, name, value)
        if not _takes_churn(ctx, req):
            return req
        return msgspec.structs.replace(req, **{name: number})

    return apply


def bound_axis(name: str, label: str) -> Apply:
    """A1111's Schedule min sigma/max sigma/rho axes: the schedule's bound where the cell's
    schedule takes it (the plot drops it elsewhere, as A1111 ignores it); 0 is the schedule's
    own, as A1111 reads it."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        number = None if float(value) == 0 else in_range(label, name, value)
        return msgspec.structs.replace(req, **{name: number})

    return apply


def ranged_axis(name: str, label: str) -> Apply:
    """An axis that sets the native field ``name`` within its range (a 422 naming ``label``
    outside it); the plot drops it where the cell's run does not use it, as A1111 ignores it
    there (Negative Guidance minimum sigma without a negative pass, Extra noise in a plain
    txt2img)."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        return msgspec.structs.replace(req, **{name: in_range(label, name, value)})

    return apply


def boolean_axis(name: str, label: str) -> Apply:
    """An A1111 boolean option's axis ("True"/"False") setting the native field ``name``; the
    plot drops it where the cell's run does not use it, as A1111 ignores it there (Always
    discard next-to-last sigma where the sampler walks timesteps...)."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        text = str(value).strip()
        if text not in ("True", "False"):
            raise FieldError(FIELD, f"{label} {value!r} is not True or False")
        return msgspec.structs.replace(req, **{name: text == "True"})

    return apply


def eta_axis(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's Eta axis: the sampler's fresh noise per step, where the sampler adds any."""
    eta = in_range("Eta", "eta", value)
    sampler = req.sampler or ctx.services.jobs.resolver.model(req.model).defaults.sampler
    return msgspec.structs.replace(req, eta=sampler_eta(sampler, eta))


def in_range(label: str, native: str, value: Any) -> float:
    """An axis value within the ``native`` request field's range, else a 422 naming ``label``."""
    low, high = LIMITS[native].minimum or 0, LIMITS[native].maximum or 1
    if not low <= float(value) <= high:
        raise FieldError(FIELD, f"{label} {value!r} is not between {low:g} and {high:g}")
    return float(value)


def noise_multiplier_axis(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    """A1111's Initial noise multiplier axis: img2img's; in txt2img it changes nothing, as in
    A1111 (whose txt2img has no noise multiplier)."""
    multiplier = in_range("Initial noise multiplier", "noise_multiplier", value)
    if req.init_image is None:
        return req
    return msgspec.structs.replace(req, noise_multiplier=multiplier)


def schedule_axis(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    if str(value).strip().lower() == A1111_AUTOMATIC:
        # A1111's "Automatic": the sampler's own choice; the model's schedule for its default.
        spec = SAMPLER_SPECS.get(req.sampler or "")
        return msgspec.structs.replace(req, schedule=spec.a1111_schedule if spec else None)
    schedule = find_schedule(str(value))
    if schedule is None:
        names = ", ".join(schedule_choices(ctx))
        raise FieldError(FIELD, f"Schedule type {value!r} is not supported; available: {names}")
    return msgspec.structs.replace(req, schedule=schedule)


def schedule_choices(ctx: ScriptContext) -> list[str]:
    return [A1111_AUTOMATIC, *(spec.a1111_name for spec in SCHEDULE_SPECS.values())]


def rng_choices(ctx: ScriptContext) -> list[str]:
    return list(RNG_SOURCES)


def rng_axis(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's RNG source axis: CPU and NV are torch's generators, GPU Impasto's own noise."""
    rng = RNG_SOURCES.get(str(value).strip().upper())
    if rng is None:
        raise FieldError(FIELD, f"RNG source {value!r} is not one of {', '.join(RNG_SOURCES)}")
    return msgspec.structs.replace(req, rng=rng)


def boolean_choices(ctx: ScriptContext) -> list[str]:
    return ["True", "False"]  # A1111's boolean_choice(reverse=True)
