"""Checks a resolved plan needs the model's UNet config for, made before the job is queued, by
the engine's own rules: seamless tiling's sizes and parts, and composable (``AND``) prompts on
a UNet that embeds its guidance scale (LCM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from impasto.engine.conditioning import negative_for
from impasto.engine.padding import size_multiple
from impasto.engine.types import InvalidRequestError
from impasto.engine.validation import check_tiling
from impasto.services.errors import FieldError
from impasto.wire import ResolvedPlan


def _unet_config(model_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((model_dir / "unet" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def check_against_model(plan: ResolvedPlan, model_dir: Path) -> None:
    """A 422 naming the field the model cannot run as asked: a size or part that cannot go
    with ``tiling``, or an ``AND`` prompt where the UNet embeds its guidance scale."""
    config = _unet_config(model_dir)
    embedded = bool(config.get("time_cond_proj_dim"))
    hires_prompt = plan.hires.prompt if plan.hires is not None else None
    try:
        if plan.tiling:
            check_tiling(plan, size_multiple(config))
        for field, prompt in (("prompt", plan.prompt), ("hires.prompt", hires_prompt)):
            try:
                negative_for(prompt or "", "", guided=False, embedded=embedded)
            except InvalidRequestError as exc:
                raise InvalidRequestError(field, exc.message) from None
    except InvalidRequestError as exc:
        raise FieldError(exc.field, exc.message) from None
