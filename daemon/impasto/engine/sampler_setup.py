"""The request's sampler, built with what it takes of the request: eta and sigma churn."""

from __future__ import annotations

import math
from typing import Protocol

from impasto.engine.schedulers import Churn, sampler_churn, sampler_eta
from impasto.engine.schedulers.base import Scheduler, SchedulerConfig
from impasto.engine.types import GenerationParams


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
    return factory(params.sampler, config, params.schedule, eta, params_churn(params))
