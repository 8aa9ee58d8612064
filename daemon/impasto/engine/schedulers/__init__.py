"""Numpy samplers of the engine, one algorithm per module, behind one Protocol."""

from .base import NoiseFn, Scheduler, SchedulerConfig
from .registry import (
    DEFAULT_SAMPLER,
    SAMPLER_NAMES,
    SAMPLERS,
    create_scheduler,
    register_sampler,
    sampler_schedules,
)
from .sigmas import SCHEDULES

__all__ = [
    "DEFAULT_SAMPLER",
    "SAMPLERS",
    "SAMPLER_NAMES",
    "SCHEDULES",
    "NoiseFn",
    "Scheduler",
    "SchedulerConfig",
    "create_scheduler",
    "register_sampler",
    "sampler_schedules",
]
