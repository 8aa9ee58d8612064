"""Numpy samplers of the engine, one algorithm per module, behind one Protocol."""

from .base import NoiseFn, Scheduler, SchedulerConfig
from .registry import (
    A1111_AUTOMATIC,
    DEFAULT_SAMPLER,
    SAMPLER_NAMES,
    SAMPLER_SPECS,
    SAMPLERS,
    SCHEDULE_SPECS,
    SamplerSpec,
    ScheduleSpec,
    create_scheduler,
    eta_samplers,
    find_sampler,
    find_schedule,
    register_sampler,
    sampler_eta,
    sampler_label,
    sampler_schedules,
    schedule_for_model,
    schedule_label,
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
    "NoiseFn",
    "SamplerSpec",
    "ScheduleSpec",
    "Scheduler",
    "SchedulerConfig",
    "create_scheduler",
    "eta_samplers",
    "find_sampler",
    "find_schedule",
    "register_sampler",
    "sampler_eta",
    "sampler_label",
    "sampler_schedules",
    "schedule_for_model",
    "schedule_label",
]
