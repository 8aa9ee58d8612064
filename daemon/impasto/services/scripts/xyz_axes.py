"""The X/Y/Z plot's axis types, in AUTOMATIC1111's order, and what each sets in a request.

A1111 clients send an axis type as an index into this list (filtered by tab: txt2img drops the
img2img-only types and the reverse), so the order and the labels are A1111's. Types Impasto
cannot vary (face restoration, token merging) stay in the list to keep the indexes and
are refused when chosen. "Size" is Impasto's own addition, at the end so no index moves.
How an axis's values are read (lists, ranges): xyz_values.py; what the sampling axes set:
xyz_sampling.py.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from impasto.engine.upscale_latents import UPSCALER_LABELS
from impasto.services.compat import resolve_checkpoint
from impasto.services.errors import FieldError
from impasto.services.scripts.base import FIELD, ScriptContext
from impasto.services.scripts.xyz_sampling import (
    Apply,
    boolean_axis,
    boolean_choices,
    bound_axis,
    churn_axis,
    eta_axis,
    hires_field,
    noise_multiplier_axis,
    ranged_axis,
    rng_axis,
    rng_choices,
    sampler_axis,
    schedule_axis,
    schedule_choices,
)
from impasto.wire import GenerateRequest

ValueKind = Literal["int", "float", "str", "permutations"]
Format = Literal["label", "value", "join", "nothing", "basename"]
Tab = Literal["both", "txt2img", "img2img"]
NOT_SET = ("", "none")

log = logging.getLogger("impasto.scripts")


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


def _clip_skip(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    """Clip skip as the A1111 routes take it: lowered to what the cell's model can skip (a
    text encoder exported without hidden states skips none). Late: after a checkpoint axis."""
    limit = ctx.services.jobs.resolver.model(req.model).clip_skip_max
    if isinstance(value, int) and value > limit:
        log.info(
            "clip skip %d lowered to %d: %r has no more hidden states", value, limit, req.model
        )
        value = limit
    return msgspec.structs.replace(req, clip_skip=value)


def _nothing(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    return req


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


def _denoising(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    # img2img's strength; in txt2img A1111's denoising strength is the hires pass's.
    if req.init_image is not None:
        return msgspec.structs.replace(req, strength=value)
    return hires_field("strength")(ctx, req, value, [])


_UPSCALERS = {label.lower(): key for key, label in UPSCALER_LABELS.items()}


def _upscaler(
    ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]
) -> GenerateRequest:
    key = _UPSCALERS.get(str(value).strip().lower())
    if key is None:
        names = ", ".join(UPSCALER_LABELS.values())
        raise FieldError(FIELD, f"Hires upscaler {value!r} is not available; use one of: {names}")
    return hires_field("upscaler")(ctx, req, key, [])


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


def _styles(ctx: ScriptContext, req: GenerateRequest, value: Any, _: list[Any]) -> GenerateRequest:
    """A1111's Styles axis: the value's comma-separated style names added to the request's
    own (A1111's ``p.styles.extend(x.split(','))``; an empty value adds none). The styles
    plugin applies them, and refuses a name it does not know."""
    if ctx.services.plugins is None:
        raise FieldError(
            FIELD, "Styles need the styles plugin, and this daemon runs without plugins"
        )
    names = [name.strip() for name in str(value).split(",") if name.strip()]
    if not names:
        return req
    own = req.plugins.get("styles") or []
    own = [own] if isinstance(own, str) else list(own)
    return msgspec.structs.replace(req, plugins={**req.plugins, "styles": [*own, *names]})


def _checkpoints(ctx: ScriptContext) -> list[str]:
    return sorted((m.id for m in ctx.services.catalog.list()), key=str.casefold)


def _upscalers(ctx: ScriptContext) -> list[str]:
    return list(UPSCALER_LABELS.values())


def _unused(ctx: ScriptContext) -> list[str]:
    return []


NGMS = "Negative Guidance minimum sigma"

AXES: tuple[Axis, ...] = (
    Axis("Nothing", "str", _nothing, format="nothing"),
    Axis("Seed", "int", _field("seed")),
    Axis("Var. seed", "int", _field("subseed")),
    Axis("Var. strength", "float", _field("subseed_strength")),
    Axis("Steps", "int", _field("steps")),
    Axis("Hires steps", "int", hires_field("steps"), tab="txt2img"),
    Axis("CFG Scale", "float", _field("cfg_scale")),
    Axis("Image CFG Scale", "float", None, tab="img2img"),
    Axis("Prompt S/R", "str", _prompt_sr, format="value"),
    Axis("Prompt order", "permutations", _prompt_order, format="join"),
    Axis("Sampler", "str", sampler_axis("sampler"), "txt2img", _unused, format="value"),
    Axis("Hires sampler", "str", sampler_axis("hires"), "txt2img", _unused),
    Axis("Sampler", "str", sampler_axis("sampler"), "img2img", _unused, format="value"),
    Axis(
        "Checkpoint name",
        "str",
        _checkpoint("model"),
        choices=_checkpoints,
        format="basename",
        cost=1.0,
    ),
    Axis(NGMS, "float", ranged_axis("s_min_uncond", NGMS)),
    Axis("Sigma Churn", "float", churn_axis("s_churn", "Sigma Churn"), late=True),
    Axis("Sigma min", "float", churn_axis("s_tmin", "Sigma min"), late=True),
    Axis("Sigma max", "float", churn_axis("s_tmax", "Sigma max"), late=True),
    Axis("Sigma noise", "float", churn_axis("s_noise", "Sigma noise"), late=True),
    Axis("Schedule type", "str", schedule_axis, choices=schedule_choices, late=True),
    Axis("Schedule min sigma", "float", bound_axis("sigma_min", "Schedule min sigma")),
    Axis("Schedule max sigma", "float", bound_axis("sigma_max", "Schedule max sigma")),
    Axis("Schedule rho", "float", bound_axis("rho", "Schedule rho")),
    Axis("Eta", "float", eta_axis, late=True),
    Axis("Clip skip", "int", _clip_skip, late=True),
    Axis("Denoising", "float", _denoising),
    Axis("Initial noise multiplier", "float", noise_multiplier_axis),
    Axis("Extra noise", "float", ranged_axis("extra_noise", "Extra noise")),
    Axis("Hires upscaler", "str", _upscaler, "txt2img", _upscalers),
    Axis("Cond. Image Mask Weight", "float", None, tab="img2img"),
    Axis("VAE", "str", _vae, choices=_unused, cost=0.7),
    Axis("Styles", "str", _styles, choices=_unused),
    Axis("UniPC Order", "int", _field("unipc_order"), cost=0.5),
    Axis("Face restore", "str", None, format="value"),
    Axis("Token merging ratio", "float", None),
    Axis("Token merging ratio high-res", "float", None),
    Axis(
        "Always discard next-to-last sigma",
        "str",
        boolean_axis("discard_penultimate_sigma", "Always discard next-to-last sigma"),
        choices=boolean_choices,
    ),
    Axis(
        "SGM noise multiplier",
        "str",
        boolean_axis("sgm_noise_multiplier", "SGM noise multiplier"),
        choices=boolean_choices,
    ),
    Axis(
        "Refiner checkpoint",
        "str",
        _checkpoint("refiner"),
        choices=_checkpoints,
        format="basename",
        cost=1.0,
    ),
    Axis("Refiner switch at", "float", _field("refiner_switch")),
    Axis("RNG source", "str", rng_axis, choices=rng_choices),
    Axis("Size", "str", _size),
)


def axes_for(is_img2img: bool) -> list[Axis]:
    """The axis types of one tab, in the order A1111's indexes count them."""
    tab = "img2img" if is_img2img else "txt2img"
    return [axis for axis in AXES if axis.tab in ("both", tab)]


def supported_labels(is_img2img: bool) -> list[str]:
    return [axis.label for axis in axes_for(is_img2img) if axis.apply is not None]
