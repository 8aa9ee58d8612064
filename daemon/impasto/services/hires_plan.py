"""The hires pass's plan: its size, sampler and schedule, prompt and upscaler, checked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from impasto.engine.upscale_latents import UPSCALERS
from impasto.services.errors import FieldError
from impasto.services.prompt_text import hires_prompt
from impasto.services.sampler_plan import hires_sampler_and_schedule
from impasto.wire import LIMITS, GenerateRequest, LoraSpec, ResolvedHires
from impasto.worker.files import NotInstalledError, upscaler_models, upscaler_path


@dataclass(frozen=True)
class FirstPass:
    """What the hires pass starts from: the first pass's size, sampler and schedule."""

    width: int
    height: int
    sampler: str
    schedule: str
    sdxl: bool


def resolve_hires(
    request: GenerateRequest, first: FirstPass, models_dir: Path, loras: list[LoraSpec]
) -> ResolvedHires | None:
    """The hires pass's size (from ``scale`` unless given), sampler id and schedule (the first
    pass's where its sampler has it, else ``default``), its prompt without LoRA tags (``loras``
    are the first pass's); txt2img only."""
    hires = request.hires
    if hires is None:
        return None
    width, height = first.width, first.height
    if request.init_image or request.mask_image:
        raise FieldError("hires", "hires fix is for txt2img: send it without init_image")
    limit = LIMITS["width"]
    multiple = limit.multiple_of or 8
    top = int(limit.maximum or 2048)
    sizes = {}
    for field, given, base in (("width", hires.width, width), ("height", hires.height, height)):
        # A1111: int(size * scale); the latents then floor it to a multiple of 8.
        size = given or int(base * hires.scale) // multiple * multiple
        if not base <= size <= top:
            raise FieldError(
                f"hires.{field}",
                f"{size} must be from {base} (the first pass's {field}) to {top}; "
                "lower hires.scale or the size",
            )
        sizes[field] = size
    sampler, schedule = hires_sampler_and_schedule(hires, first.sampler, first.schedule, first.sdxl)
    return ResolvedHires(
        width=sizes["width"],
        height=sizes["height"],
        upscaler=_hires_upscaler(hires.upscaler, models_dir),
        steps=hires.steps,
        strength=hires.strength,
        sampler=sampler,
        schedule=schedule,
        prompt=hires_prompt(hires.prompt, loras),
        negative_prompt=hires.negative_prompt,
        cfg_scale=hires.cfg_scale,
    )


def _hires_upscaler(name: str, models_dir: Path) -> str:
    """A latent or image upscaler id, or an installed super-resolution model's name."""
    if name in UPSCALERS:
        return name
    try:
        return upscaler_path(models_dir, name, "hires.upscaler").stem
    except NotInstalledError:
        models = ", ".join(upscaler_models(models_dir)) or "none installed"
        raise FieldError(
            "hires.upscaler",
            f"unknown upscaler {name!r}; use one of: {', '.join(UPSCALERS)}, or a "
            f"super-resolution model in the models folder's upscalers/ ({models})",
        ) from None
