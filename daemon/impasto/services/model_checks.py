"""Checks a resolved plan needs the model's UNet config for, made before the job is queued, by
the engine's own rules: seamless tiling's sizes and parts, and composable (``AND``) prompts on
a UNet that embeds its guidance scale (LCM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from impasto.engine.conditioning import check_composable
from impasto.engine.padding import size_multiple
from impasto.engine.prompt_schedule import composable_parts
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
    with ``tiling``, or an ``AND`` prompt where the UNet embeds its guidance scale. The UNet's
    config is read only for a request that needs it."""
    prompts = {"prompt": plan.prompt, "hires.prompt": plan.hires.prompt if plan.hires else None}
    composed = [f for f, text in prompts.items() if text and len(composable_parts(text)) > 1]
    if not plan.tiling and not composed:
        return
    config = _unet_config(model_dir)
    if plan.tiling:
        try:
            check_tiling(plan, size_multiple(config))
        except InvalidRequestError as exc:
            raise FieldError(exc.field, exc.message) from None
    embedded = bool(config.get("time_cond_proj_dim"))
    for field in composed:
        try:
            check_composable(prompts[field] or "", embedded)
        except InvalidRequestError as exc:
            raise FieldError(field, exc.message) from None
