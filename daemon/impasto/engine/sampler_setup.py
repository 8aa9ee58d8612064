"""The request's sampler, built with what it takes of the request: eta, sigma churn and the
schedule's bounds."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Protocol

import numpy as np

from impasto.engine.pipelines.base import UncondSkip
from impasto.engine.pipelines.image_steps import image_steps
from impasto.engine.schedulers import (
    SAMPLERS,
    Churn,
    sampler_churn,
    sampler_discards,
    sampler_eta,
    sigma_samplers,
    unipc_samplers,
)
from impasto.engine.schedulers.base import RUN_BOUNDS, Scheduler, SchedulerConfig
from impasto.engine.schedulers.schedules import bounds_for, t_to_sigma
from impasto.engine.schedulers.sigmas import (
    alphas_cumprod,
    k_schedule,
    solver_schedule,
    train_sigmas,
)
from impasto.engine.schedulers.solver_base import SolverSampler
from impasto.engine.types import GenerationParams, InvalidRequestError


class SchedulerFactory(Protocol):
    """Builds a sampler by id (``schedulers.create_scheduler``'s signature)."""

    def __call__(
        self,
        name: str,
        config: SchedulerConfig,
        schedule: str = ...,
        eta: float | None = ...,
        churn: Churn | None = ...,
    ) -> Scheduler: ...


def params_churn(params: GenerationParams) -> Churn | None:
    """The request's sigma churn where it is on and its sampler takes churn, else None."""
    if not params.s_churn:
        return None
    tmax = math.inf if params.s_tmax is None else params.s_tmax
    churn = Churn(params.s_churn, params.s_tmin, tmax, params.s_noise)
    return sampler_churn(params.sampler, churn)


def build_scheduler(
    factory: SchedulerFactory, params: GenerationParams, config: SchedulerConfig
) -> Scheduler:
    """``params``' sampler on its schedule for a model's ``config``, with the request's eta and
    churn where the sampler takes them (a sampler without them ignores them)."""
    eta = sampler_eta(params.sampler, params.eta)
    run = run_config(config, params)
    return factory(params.sampler, run, params.schedule, eta, params_churn(params))


def uncond_skip(params: GenerationParams, config: SchedulerConfig) -> UncondSkip | None:
    """The calls of a run that leave out the negative prompt's pass (``params.s_min_uncond``,
    ``s_min_uncond_all``, ``skip_early_cond``), a call's sigma read from the model's training
    schedule at its timestep; None where none does."""
    if not params.s_min_uncond and not params.skip_early_cond:
        return None
    train = train_sigmas(alphas_cumprod(config)).astype(np.float64)

    def sigma_of(t: float) -> float:
        return float(t_to_sigma(np.array([t]), train)[0])

    return UncondSkip(
        sigma_of, params.s_min_uncond, params.s_min_uncond_all, params.skip_early_cond
    )


def laid_out_steps(params: GenerationParams) -> int:
    """The steps a run from an image lays its schedule out for (``params.img2img_steps``:
    more than it runs in ``exact`` mode)."""
    return image_steps(params.steps, params.strength, params.img2img_steps)[0]


def run_config(config: SchedulerConfig, params: GenerationParams) -> SchedulerConfig:
    """A model's ``config`` with what the run sets: the schedule bounds (``sigma_min``,
    ``sigma_max``, ``rho``), and the discarding of the next-to-last sigma and the SGM noise
    multiplier, and UniPC's order and variant, where the run's sampler takes them."""
    settings: dict[str, Any] = {name: getattr(params, name) for name in RUN_BOUNDS}
    if params.discard_penultimate_sigma and sampler_discards(params.sampler, True):
        settings["discard_penultimate"] = True
    if params.sgm_noise_multiplier and params.sampler in sigma_samplers():
        settings["sgm_noise_multiplier"] = True
    if params.sampler in unipc_samplers():
        settings.update(unipc_order=params.unipc_order, unipc_variant=params.unipc_variant)
    return replace(config, **settings)


class BoundedRun(Protocol):
    """What the bounds check reads: engine parameters, or a pass of the services' resolved
    plan (the same names), so both check one rule."""

    @property
    def sampler(self) -> str: ...
    @property
    def schedule(self) -> str: ...
    @property
    def steps(self) -> int: ...
    @property
    def sigma_min(self) -> float | None: ...
    @property
    def sigma_max(self) -> float | None: ...
    @property
    def rho(self) -> float | None: ...


def check_bounds(params: BoundedRun, config: SchedulerConfig) -> None:
    """InvalidRequestError naming the field when the run's schedule bounds would make its
    sigmas rise instead of fall on this model: ``sigma_min`` not below the top sigma (the
    run's ``sigma_max`` or the schedule's own), or ``sigma_max`` not above the lowest."""
    taken = bounds_for(params.schedule, params.sigma_min, params.sigma_max, params.rho)
    if "sigma_min" not in taken and "sigma_max" not in taken:
        return
    lay_out = solver_schedule if issubclass(SAMPLERS[params.sampler], SolverSampler) else k_schedule
    _, own, _ = lay_out(config, params.steps, params.schedule)
    positive = own[own > 0]
    low = taken.get("sigma_min", float(np.min(positive)))
    top = taken.get("sigma_max", float(own[0]))
    if low < top:
        return
    if "sigma_min" in taken and "sigma_max" in taken:
        raise InvalidRequestError("sigma_min", f"{low:g} must be below sigma_max {top:g}")
    if "sigma_min" in taken:
        message = f"{low:g} must be below the schedule's top sigma on this model, {top:.4g}"
        raise InvalidRequestError("sigma_min", message)
    message = f"{top:g} must be above the schedule's lowest sigma on this model, {low:.4g}"
    raise InvalidRequestError("sigma_max", message)
