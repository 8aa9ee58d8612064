"""Numpy samplers of the engine, one algorithm per module, behind one Protocol."""

from .abilities import (
    churn_samplers,
    create_scheduler,
    eta_default,
    eta_samplers,
    sampler_churn,
    sampler_discards,
    sampler_eta,
    sampler_schedules,
    sigma_samplers,
    unipc_samplers,
)
from .base import NoiseFn, Scheduler, SchedulerConfig
from .churn import Churn
from .names import (
    find_sampler,
    find_sampler_and_schedule,
    find_schedule,
    sampler_label,
    schedule_label,
)
from .registry import (
    A1111_AUTOMATIC,
    DEFAULT_SAMPLER,
    SAMPLER_NAMES,
    SAMPLER_SPECS,
    SAMPLERS,
    SCHEDULE_SPECS,
    SamplerSpec,
    ScheduleSpec,
    register_sampler,
    schedule_for_model,
)
from .sigmas import SCHEDULES

__all__ = [
    "A1111_AUTOMATIC",
    "DEFAULT_SAMPLER",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "SAMPLER_SPECS",
    "SCHEDULES",
    "SCHEDULE_SPECS",
    "Churn",
    "NoiseFn",
    "SamplerSpec",
    "ScheduleSpec",
    "Scheduler",
    "SchedulerConfig",
    "churn_samplers",
    "create_scheduler",
    "eta_default",
    "eta_samplers",
    "find_sampler",
    "find_sampler_and_schedule",
    "find_schedule",
    "register_sampler",
    "sampler_churn",
    "sampler_discards",
    "sampler_eta",
    "sampler_label",
    "sampler_schedules",
    "schedule_for_model",
    "schedule_label",
    "sigma_samplers",
    "unipc_samplers",
]
