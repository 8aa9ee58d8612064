"""Sampler ids, their display names, and the factory the pipelines use."""

from __future__ import annotations

from .base import Scheduler, SchedulerConfig
from .common import Sampler
from .ddim import DDIMSampler
from .dpmpp_2m import DPMPP2MSampler
from .dpmpp_2m_sde import DPMPP2MSDESampler
from .euler import EulerSampler
from .euler_a import EulerAncestralSampler
from .heun import HeunSampler
from .lcm import LCMSampler
from .lms import LMSSampler
from .pndm import PNDMSampler
from .unipc import UniPCSampler

DEFAULT_SAMPLER = "euler_a"


SAMPLERS: dict[str, type[Sampler]] = {
    "euler_a": EulerAncestralSampler,
    "euler": EulerSampler,
    "heun": HeunSampler,
    "lms": LMSSampler,
    "ddim": DDIMSampler,
    "pndm": PNDMSampler,
    "dpmpp_2m": DPMPP2MSampler,
    "dpmpp_2m_sde": DPMPP2MSDESampler,
    "unipc": UniPCSampler,
    "lcm": LCMSampler,
}
"""Sampler id -> class; every class implements ``base.Scheduler``."""

SAMPLER_NAMES: dict[str, str] = {
    "euler_a": "Euler a",
    "euler": "Euler",
    "heun": "Heun",
    "lms": "LMS",
    "ddim": "DDIM",
    "pndm": "PNDM (PLMS)",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "unipc": "UniPC",
    "lcm": "LCM",
}
"""Sampler id -> the name people know it by."""


def register_sampler(sampler_id: str, cls: type[Sampler], name: str) -> None:
    """Add a sampler (a plugin's); its class declares ``schedules``. Ids cannot be reused."""
    existing = SAMPLERS.get(sampler_id)
    if existing is not None and existing is not cls:
        raise ValueError(f"sampler id {sampler_id!r} is already taken by {existing.__name__}")
    if not isinstance(cls, type) or "default" not in getattr(cls, "schedules", ()):
        raise TypeError(f"sampler {sampler_id!r} must be a class whose schedules include default")
    SAMPLERS[sampler_id] = cls
    SAMPLER_NAMES[sampler_id] = name


def _sampler_class(name: str) -> type[Sampler]:
    try:
        return SAMPLERS[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}"
        ) from None


def sampler_schedules(name: str) -> tuple[str, ...]:
    """The sigma schedules sampler ``name`` supports ("default" is always first)."""
    return _sampler_class(name).schedules


def create_scheduler(name: str, config: SchedulerConfig, schedule: str = "default") -> Scheduler:
    """A fresh sampler ``name`` for a model's scheduler config, on sigma ``schedule``."""
    cls = _sampler_class(name)
    if schedule not in cls.schedules:
        raise ValueError(
            f"sampler {name!r} does not support the {schedule!r} schedule; "
            f"choose one of: {', '.join(cls.schedules)}"
        )
    return cls(config, schedule)
