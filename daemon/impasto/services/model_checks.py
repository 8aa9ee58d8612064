"""Checks a resolved plan needs the model's UNet or scheduler config for, made before the job
is queued, by the engine's own rules: seamless tiling's sizes and parts, composable (``AND``)
prompts on a UNet that embeds its guidance scale (LCM), and schedule bounds that fit the
model's sigmas."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from impasto.engine.conditioning import check_composable
from impasto.engine.padding import size_multiple
from impasto.engine.prompt_schedule import composable_parts
from impasto.engine.sampler_setup import check_bounds
from impasto.engine.schedulers import SchedulerConfig
from impasto.engine.types import InvalidRequestError
from impasto.engine.validation import check_tiling
from impasto.services.errors import FieldError, engine_rules
from impasto.wire import ResolvedPlan


def _config(model_dir: Path, part: str, name: str = "config.json") -> dict[str, Any]:
    try:
        config = json.loads((model_dir / part / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


@dataclass(frozen=True)
class _Pass:
    """One pass of a plan as the bounds check reads it (``sampler_setup.BoundedRun``)."""

    sampler: str
    schedule: str
    steps: int
    sigma_min: float | None
    sigma_max: float | None
    rho: float | None


def _check_bounds(plan: ResolvedPlan, model_dir: Path) -> None:
    """A 422 naming ``sigma_min`` or ``sigma_max`` where a pass's schedule would rise on this
    model (the scheduler config is read only for a request that moves a schedule's ends)."""
    if plan.sigma_min is None and plan.sigma_max is None:
        return
    try:
        config = SchedulerConfig.from_dict(_config(model_dir, "scheduler", "scheduler_config.json"))
    except (TypeError, ValueError):
        return  # the engine reports a broken scheduler config when it loads the model
    bounds = (plan.sigma_min, plan.sigma_max, plan.rho)
    passes = [_Pass(plan.sampler, plan.schedule, plan.steps, *bounds)]
    if plan.hires is not None:
        sampler = plan.hires.sampler or plan.sampler
        steps = plan.hires.steps or plan.steps
        schedule = plan.hires.schedule or plan.schedule
        passes.append(_Pass(sampler, schedule, steps, *bounds))
    for run in passes:
        with engine_rules():
            check_bounds(run, config)


def check_against_model(plan: ResolvedPlan, model_dir: Path) -> None:
    """A 422 naming the field the model cannot run as asked: a size or part that cannot go
    with ``tiling``, or an ``AND`` prompt where the UNet embeds its guidance scale. The UNet's
    config is read only for a request that needs it; so is the scheduler's for a request whose
    schedule bounds must fit the model's sigmas."""
    _check_bounds(plan, model_dir)
    prompts = {"prompt": plan.prompt, "hires.prompt": plan.hires.prompt if plan.hires else None}
    composed = [f for f, text in prompts.items() if text and len(composable_parts(text)) > 1]
    if not plan.tiling and not composed:
        return
    config = _config(model_dir, "unet")
    if plan.tiling:
        with engine_rules():
            check_tiling(plan, size_multiple(config))
    embedded = bool(config.get("time_cond_proj_dim"))
    for field in composed:
        try:
            check_composable(prompts[field] or "", embedded)
        except InvalidRequestError as exc:
            raise FieldError(field, exc.message) from None
