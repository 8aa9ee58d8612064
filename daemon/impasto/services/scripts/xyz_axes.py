"""The X/Y/Z plot's axis types, in AUTOMATIC1111's order, and what each sets in a request.

A1111 clients send an axis type as an index into this list (filtered by tab: txt2img drops the
img2img-only types and the reverse), so the order and the labels are A1111's. Types Impasto
cannot vary (sigma tweaks, face restoration...) stay in the list to keep the indexes and
are refused when chosen. "Size" is Impasto's own addition, at the end so no index moves.
How an axis's values are read (lists, ranges): xyz_values.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from impasto.engine.schedulers import (
    A1111_AUTOMATIC,
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    churn_samplers,
    find_schedule,
    sampler_eta,
)
from impasto.engine.upscale_latents import UPSCALER_LABELS
from impasto.services.compat import RNG_SOURCES, resolve_checkpoint
from impasto.services.errors import FieldError
from impasto.services.scripts.base import FIELD, ScriptContext
from impasto.wire import CHURN_OFF, LIMITS, GenerateRequest

ValueKind = Literal["int", "float", "str", "permutations"]
Format = Literal["label", "value", "join", "nothing", "basename"]
Apply = Callable[[ScriptContext, GenerateRequest, Any, list[Any]], GenerateRequest]
Tab = Literal["both", "txt2img", "img2img"]
NOT_SET = ("", "none")


@dataclass(frozen=True)
class Axis:
    """One axis type: its label, how values read and apply, and which tab offers it."""

    label: str
    kind: ValueKind
    apply: Apply | None  # None: Impasto cannot vary this; choosing it is refused
    tab: Tab = "both"
    # Axes with choices read A1111's dropdown list (unless csv_mode); these name the choices.
    choices: Callable[[ScriptContext], list[str]] | None = None
    format: Format = "label"
    # Axes that are slow to change (a checkpoint) are run outermost, as A1111 orders them.
    cost: float = 0.0
    # Applied to a cell's request after the other axes: A1111 reads the scheduler when it
    # samples, so a "Schedule type" axis wins over the schedule a "Sampler" axis brings.
    late: bool = False

    def caption(self, value: Any) -> str:
        """The legend text of ``value`` (A1111's format_value functions)."""
        if isinstance(value, float):
            value = round(value, 8)
        if self.format == "nothing":
            return ""
        if self.format == "join":
            return ", ".join(value)
        if self.format == "basename":
            return os.path.basename(str(value))
        if self.format == "value":
            return str(value)
        return f"{self.label}: {value}"


def _field(name: str) -> Apply:
    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        return msgspec.structs.replace(req, **{name: value})

    return apply


def _nothing(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    return req


def _hires(name: str) -> Apply:
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


def _prompt_sr(
    ctx: ScriptContext, req: GenerateRequest, value: Any, values: list[Any]
) -> GenerateRequest:
    search = values[0]
    if search not in req.prompt and search not in req.negative_prompt:
        raise FieldError(FIELD, f"Prompt S/R did not find {search!r} in prompt or negative prompt")
    return msgspec.structs.replace(
        req,
        prompt=req.prompt.replace(search, value),
        negative_prompt=req.negative_prompt.replace(search, value),
    )


def _prompt_order(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    """The tokens of ``value`` rewritten in this order, where they first appear in the prompt."""
    missing = [token for token in value if token not in req.prompt]
    if missing:
        raise FieldError(FIELD, f"Prompt order: {missing[0]!r} is not in the prompt")
    rest, parts = req.prompt, []
    for token in sorted(value, key=req.prompt.find):
        at = rest.find(token)
        parts.append(rest[:at])
        rest = rest[at + len(token) :]
    prompt = "".join(part + token for part, token in zip(parts, value, strict=True)) + rest
    return msgspec.structs.replace(req, prompt=prompt)


def _sampler(field: str) -> Apply:
    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        try:
            sampler, schedule = ctx.sampler_names(value, hires=field == "hires")
        except ValueError as exc:
            raise FieldError(FIELD, str(exc)) from None
        if field == "hires":
            req = _hires("sampler")(ctx, req, sampler, [])
            return _hires("schedule")(ctx, req, schedule, [])
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


def _churn(name: str, label: str) -> Apply:
    """A1111's Sigma Churn/min/max/noise axes: where a sampler takes churn (A1111 passes it to
    Euler, Heun and DPM2 only); Sigma max 0 is no bound, as A1111 reads it."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        number = None if name == "s_tmax" and float(value) == 0 else _in_range(label, name, value)
        if not _takes_churn(ctx, req):
            return req
        return msgspec.structs.replace(req, **{name: number})

    return apply


def _bound(name: str, label: str) -> Apply:
    """A1111's Schedule min sigma/max sigma/rho axes: the schedule's bound where the cell's
    schedule takes it (the plot drops it elsewhere, as A1111 ignores it); 0 is the schedule's
    own, as A1111 reads it."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        number = None if float(value) == 0 else _in_range(label, name, value)
        return msgspec.structs.replace(req, **{name: number})

    return apply


def _ranged(name: str, label: str) -> Apply:
    """An axis that sets the native field ``name`` within its range (a 422 naming ``label``
    outside it); the plot drops it where the cell's run does not use it, as A1111 ignores it
    there (Negative Guidance minimum sigma without a negative pass, Extra noise in a plain
    txt2img)."""

    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        return msgspec.structs.replace(req, **{name: _in_range(label, name, value)})

    return apply


def _discard(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's Always discard next-to-last sigma axis ("True"/"False"); the plot drops it where
    the cell's sampler walks timesteps, as A1111 ignores it there."""
    text = str(value).strip()
    if text not in ("True", "False"):
        message = f"Always discard next-to-last sigma {value!r} is not True or False"
        raise FieldError(FIELD, message)
    return msgspec.structs.replace(req, discard_penultimate_sigma=text == "True")


def _eta(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's Eta axis: the sampler's fresh noise per step, where the sampler adds any."""
    eta = _in_range("Eta", "eta", value)
    sampler = req.sampler or ctx.services.jobs.resolver.model(req.model).defaults.sampler
    return msgspec.structs.replace(req, eta=sampler_eta(sampler, eta))


def _in_range(label: str, native: str, value: Any) -> float:
    """An axis value within the ``native`` request field's range, else a 422 naming ``label``."""
    low, high = LIMITS[native].minimum or 0, LIMITS[native].maximum or 1
    if not low <= float(value) <= high:
        raise FieldError(FIELD, f"{label} {value!r} is not between {low:g} and {high:g}")
    return float(value)


def _noise_multiplier(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    """A1111's Initial noise multiplier axis: img2img's; in txt2img it changes nothing, as in
    A1111 (whose txt2img has no noise multiplier)."""
    multiplier = _in_range("Initial noise multiplier", "noise_multiplier", value)
    if req.init_image is None:
        return req
    return msgspec.structs.replace(req, noise_multiplier=multiplier)


def _checkpoint(field: str) -> Apply:
    def apply(
        ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
    ) -> GenerateRequest:
        if field == "refiner" and str(value).strip().lower() in NOT_SET:
            return msgspec.structs.replace(req, refiner=None)
        model = resolve_checkpoint(ctx.services, str(value))
        if model is None:
            installed = ", ".join(m.id for m in ctx.services.catalog.list())
            raise FieldError(FIELD, f"Unknown checkpoint: {value!r}; installed: {installed}")
        return msgspec.structs.replace(req, **{field: model})

    return apply


def _schedule(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    if str(value).strip().lower() == A1111_AUTOMATIC:
        # A1111's "Automatic": the sampler's own choice; the model's schedule for its default.
        spec = SAMPLER_SPECS.get(req.sampler or "")
        return msgspec.structs.replace(req, schedule=spec.a1111_schedule if spec else None)
    schedule = find_schedule(str(value))
    if schedule is None:
        names = ", ".join(_schedules(ctx))
        raise FieldError(FIELD, f"Schedule type {value!r} is not supported; available: {names}")
    return msgspec.structs.replace(req, schedule=schedule)


def _denoising(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    # img2img's strength; in txt2img A1111's denoising strength is the hires pass's.
    if req.init_image is not None:
        return msgspec.structs.replace(req, strength=value)
    return _hires("strength")(ctx, req, value, [])


_UPSCALERS = {label.lower(): key for key, label in UPSCALER_LABELS.items()}


def _upscaler(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    key = _UPSCALERS.get(str(value).strip().lower())
    if key is None:
        names = ", ".join(UPSCALER_LABELS.values())
        raise FieldError(FIELD, f"Hires upscaler {value!r} is not available; use one of: {names}")
    return _hires("upscaler")(ctx, req, key, [])


def _vae(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    name = str(value).strip()
    automatic = name.lower() in ("", "none", "auto", "automatic")
    return msgspec.structs.replace(req, vae=None if automatic else name)


_SIZE = re.compile(r"\s*(\d+)\s*(?:[x×*]\s*(\d+))?\s*", re.IGNORECASE)


def _size(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    match = _SIZE.fullmatch(str(value))
    if match is None:
        raise FieldError(FIELD, f"Size values are WIDTHxHEIGHT or one number, not {value!r}")
    width = int(match.group(1))
    return msgspec.structs.replace(req, width=width, height=int(match.group(2) or width))


def _checkpoints(ctx: ScriptContext) -> list[str]:
    return sorted((m.id for m in ctx.services.catalog.list()), key=str.casefold)


def _schedules(ctx: ScriptContext) -> list[str]:
    return [A1111_AUTOMATIC, *(spec.a1111_name for spec in SCHEDULE_SPECS.values())]


def _upscalers(ctx: ScriptContext) -> list[str]:
    return list(UPSCALER_LABELS.values())


def _unused(ctx: ScriptContext) -> list[str]:
    return []


def _rng_sources(ctx: ScriptContext) -> list[str]:
    return list(RNG_SOURCES)


def _rng(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's RNG source axis: CPU and NV are torch's generators, GPU Impasto's own noise."""
    rng = RNG_SOURCES.get(str(value).strip().upper())
    if rng is None:
        raise FieldError(FIELD, f"RNG source {value!r} is not one of {', '.join(RNG_SOURCES)}")
    return msgspec.structs.replace(req, rng=rng)


def _booleans(ctx: ScriptContext) -> list[str]:
    return ["True", "False"]  # A1111's boolean_choice(reverse=True)


NGMS = "Negative Guidance minimum sigma"

AXES: tuple[Axis, ...] = (
    Axis("Nothing", "str", _nothing, format="nothing"),
    Axis("Seed", "int", _field("seed")),
    Axis("Var. seed", "int", _field("subseed")),
    Axis("Var. strength", "float", _field("subseed_strength")),
    Axis("Steps", "int", _field("steps")),
    Axis("Hires steps", "int", _hires("steps"), tab="txt2img"),
    Axis("CFG Scale", "float", _field("cfg_scale")),
    Axis("Image CFG Scale", "float", None, tab="img2img"),
    Axis("Prompt S/R", "str", _prompt_sr, format="value"),
    Axis("Prompt order", "permutations", _prompt_order, format="join"),
    Axis("Sampler", "str", _sampler("sampler"), "txt2img", _unused, format="value"),
    Axis("Hires sampler", "str", _sampler("hires"), "txt2img", _unused),
    Axis("Sampler", "str", _sampler("sampler"), "img2img", _unused, format="value"),
    Axis(
        "Checkpoint name",
        "str",
        _checkpoint("model"),
        choices=_checkpoints,
        format="basename",
        cost=1.0,
    ),
    Axis(NGMS, "float", _ranged("s_min_uncond", NGMS)),
    Axis("Sigma Churn", "float", _churn("s_churn", "Sigma Churn"), late=True),
    Axis("Sigma min", "float", _churn("s_tmin", "Sigma min"), late=True),
    Axis("Sigma max", "float", _churn("s_tmax", "Sigma max"), late=True),
    Axis("Sigma noise", "float", _churn("s_noise", "Sigma noise"), late=True),
    Axis("Schedule type", "str", _schedule, choices=_schedules, late=True),
    Axis("Schedule min sigma", "float", _bound("sigma_min", "Schedule min sigma")),
    Axis("Schedule max sigma", "float", _bound("sigma_max", "Schedule max sigma")),
    Axis("Schedule rho", "float", _bound("rho", "Schedule rho")),
    Axis("Eta", "float", _eta, late=True),
    Axis("Clip skip", "int", _field("clip_skip")),
    Axis("Denoising", "float", _denoising),
    Axis("Initial noise multiplier", "float", _noise_multiplier),
    Axis("Extra noise", "float", _ranged("extra_noise", "Extra noise")),
    Axis("Hires upscaler", "str", _upscaler, "txt2img", _upscalers),
    Axis("Cond. Image Mask Weight", "float", None, tab="img2img"),
    Axis("VAE", "str", _vae, choices=_unused, cost=0.7),
    Axis("Styles", "str", None, choices=_unused),
    Axis("UniPC Order", "int", None, cost=0.5),
    Axis("Face restore", "str", None, format="value"),
    Axis("Token merging ratio", "float", None),
    Axis("Token merging ratio high-res", "float", None),
    Axis("Always discard next-to-last sigma", "str", _discard, choices=_booleans),
    Axis("SGM noise multiplier", "str", None, choices=_unused),
    Axis(
        "Refiner checkpoint",
        "str",
        _checkpoint("refiner"),
        choices=_checkpoints,
        format="basename",
        cost=1.0,
    ),
    Axis("Refiner switch at", "float", _field("refiner_switch")),
    Axis("RNG source", "str", _rng, choices=_rng_sources),
    Axis("Size", "str", _size),
)


def axes_for(is_img2img: bool) -> list[Axis]:
    """The axis types of one tab, in the order A1111's indexes count them."""
    tab = "img2img" if is_img2img else "txt2img"
    return [axis for axis in AXES if axis.tab in ("both", tab)]


def supported_labels(is_img2img: bool) -> list[str]:
    return [axis.label for axis in axes_for(is_img2img) if axis.apply is not None]
