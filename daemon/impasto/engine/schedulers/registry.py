"""The one sampler registry: per sampler its id, class, labels, A1111 names and recommended steps.

Everything that names a sampler reads this table: requests (ids), the UI's menu (through
``GET /api/v1/samplers``), the PNG ``parameters`` text and the PNG-info readers, and the
AUTOMATIC1111 compatible API. Adding a sampler is one ``SamplerSpec`` entry (or, from a plugin,
one ``register_sampler`` call); its class declares the schedules it supports.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class SamplerSpec:
    """One sampler. ``a1111_name`` is what A1111 calls it and what PNG metadata says."""

    id: str
    cls: type[Sampler]
    label: str
    a1111_name: str
    aliases: tuple[str, ...] = ()
    recommended_steps: int = 20

    @property
    def schedules(self) -> tuple[str, ...]:
        """The sigma schedules it supports ("default" first)."""
        return tuple(self.cls.schedules)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name that means this sampler: id, label, A1111 name and aliases."""
        return (self.id, self.label, self.a1111_name, *self.aliases)


@dataclass(frozen=True)
class ScheduleSpec:
    """One sigma schedule with its A1111 scheduler name, label and default rho."""

    id: str
    a1111_name: str
    label: str
    rho: float = -1.0


SAMPLER_SPECS: dict[str, SamplerSpec] = {
    s.id: s
    for s in (
        SamplerSpec(
            "euler_a",
            EulerAncestralSampler,
            "Euler a",
            "Euler a",
            ("k_euler_a", "k_euler_ancestral"),
        ),
        SamplerSpec("euler", EulerSampler, "Euler", "Euler", ("k_euler",)),
        SamplerSpec("heun", HeunSampler, "Heun", "Heun", ("k_heun",), recommended_steps=10),
        SamplerSpec("lms", LMSSampler, "LMS", "LMS", ("k_lms",), recommended_steps=30),
        SamplerSpec("ddim", DDIMSampler, "DDIM", "DDIM", (), recommended_steps=30),
        SamplerSpec("pndm", PNDMSampler, "PNDM (PLMS)", "PLMS", ("plms", "PNDM"), 30),
        SamplerSpec("dpmpp_2m", DPMPP2MSampler, "DPM++ 2M", "DPM++ 2M", ("k_dpmpp_2m",)),
        SamplerSpec(
            "dpmpp_2m_sde", DPMPP2MSDESampler, "DPM++ 2M SDE", "DPM++ 2M SDE", ("k_dpmpp_2m_sde",)
        ),
        SamplerSpec("unipc", UniPCSampler, "UniPC", "UniPC", (), recommended_steps=15),
        SamplerSpec("lcm", LCMSampler, "LCM", "LCM", ("k_lcm",), recommended_steps=4),
    )
}

SCHEDULE_SPECS: dict[str, ScheduleSpec] = {
    s.id: s
    for s in (
        ScheduleSpec("default", "automatic", "Automatic"),
        ScheduleSpec("karras", "karras", "Karras", 7.0),
        ScheduleSpec("exponential", "exponential", "Exponential"),
    )
}

SAMPLERS: dict[str, type[Sampler]] = {s.id: s.cls for s in SAMPLER_SPECS.values()}
"""Sampler id -> class (a view of ``SAMPLER_SPECS``)."""

SAMPLER_NAMES: dict[str, str] = {s.id: s.label for s in SAMPLER_SPECS.values()}
"""Sampler id -> display label (a view of ``SAMPLER_SPECS``)."""


def register_sampler(
    sampler_id: str,
    cls: type[Sampler],
    name: str,
    *,
    a1111_name: str | None = None,
    aliases: tuple[str, ...] = (),
    recommended_steps: int = 20,
) -> None:
    """Add a sampler (a plugin's); its class declares ``schedules``. Ids cannot be reused."""
    existing = SAMPLERS.get(sampler_id)
    if existing is not None and existing is not cls:
        raise ValueError(f"sampler id {sampler_id!r} is already taken by {existing.__name__}")
    if not isinstance(cls, type) or "default" not in getattr(cls, "schedules", ()):
        raise TypeError(f"sampler {sampler_id!r} must be a class whose schedules include default")
    spec = SamplerSpec(sampler_id, cls, name, a1111_name or name, aliases, recommended_steps)
    SAMPLER_SPECS[sampler_id] = spec
    SAMPLERS[sampler_id] = cls
    SAMPLER_NAMES[sampler_id] = name


def find_sampler(name: str) -> str | None:
    """The sampler id any of its names means ("PLMS", "DPM++ 2M", "k_euler"), any case."""
    key = name.strip().lower()
    for spec in SAMPLER_SPECS.values():
        if key in (n.lower() for n in spec.names):
            return spec.id
    return None


def find_schedule(name: str | None) -> str | None:
    """The schedule id of a schedule id, A1111 scheduler name or label; "" means default."""
    key = (name or "default").strip().lower() or "default"
    for spec in SCHEDULE_SPECS.values():
        if key in (spec.id, spec.a1111_name.lower(), spec.label.lower()):
            return spec.id
    return None


def sampler_label(sampler_id: str) -> str:
    """The name PNG metadata and A1111 use for a sampler id ("pndm" -> "PLMS")."""
    spec = SAMPLER_SPECS.get(sampler_id)
    return spec.a1111_name if spec else sampler_id


def schedule_label(schedule: str) -> str:
    """The A1111 label of a schedule id ("karras" -> "Karras")."""
    spec = SCHEDULE_SPECS.get(schedule)
    return spec.label if spec else schedule.title()


def _sampler_spec(name: str) -> SamplerSpec:
    try:
        return SAMPLER_SPECS[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLER_SPECS)}"
        ) from None


def sampler_schedules(name: str) -> tuple[str, ...]:
    """The sigma schedules sampler ``name`` supports ("default" is always first)."""
    return _sampler_spec(name).schedules


def create_scheduler(name: str, config: SchedulerConfig, schedule: str = "default") -> Scheduler:
    """A fresh sampler ``name`` for a model's scheduler config, on sigma ``schedule``."""
    cls = _sampler_spec(name).cls
    if schedule not in cls.schedules:
        raise ValueError(
            f"sampler {name!r} does not support the {schedule!r} schedule; "
            f"choose one of: {', '.join(cls.schedules)}"
        )
    return cls(config, schedule)
