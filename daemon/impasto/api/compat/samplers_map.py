"""AUTOMATIC1111 sampler and scheduler names to Impasto's sampler ids and schedules, both ways."""

from __future__ import annotations

from dataclasses import dataclass

from impasto.api.compat.a1111_schemas import SamplerItem, SchedulerItem
from impasto.engine.schedulers import (
    A1111_AUTOMATIC,
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    find_sampler_and_schedule,
    find_schedule,
    sampler_label,
    schedule_label,
)

__all__ = [
    "SamplerChoice",
    "UnknownSamplerError",
    "explicit_schedule",
    "sampler_from_name",
    "sampler_label",
    "sampler_list",
    "schedule_label",
    "scheduler_list",
    "to_impasto",
]


class UnknownSamplerError(ValueError):
    """A sampler or scheduler name that maps to nothing Impasto runs."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SamplerChoice:
    """An Impasto sampler id and schedule."""

    sampler: str
    schedule: str


def to_impasto(sampler_name: str | None, scheduler: str | None = None) -> SamplerChoice:
    """("DPM++ 2M", "Karras"), ("DPM++ 2M Karras", None) or ("euler_a", None) -> a choice.

    As in A1111 1.9 and later: an explicit scheduler other than automatic wins over a legacy
    suffix in the name; with none (or "Automatic") the suffix's schedule, else the one A1111's
    "Automatic" gives that sampler (Karras for DPM++ 2M, Uniform for Euler).
    """
    found, legacy = sampler_from_name(sampler_name or "Euler a")
    wanted = explicit_schedule(scheduler)
    if wanted is None:
        wanted = legacy or SAMPLER_SPECS[found].a1111_schedule
    return SamplerChoice(found, wanted)


def sampler_from_name(name: str) -> tuple[str, str | None]:
    """A sampler id and the schedule a pre-1.9 name carries ("DPM++ 2M Karras"), else None."""
    found = find_sampler_and_schedule(name)
    if found is not None:
        return found
    names = ", ".join(spec.a1111_name for spec in SAMPLER_SPECS.values())
    raise UnknownSamplerError("sampler_name", f"Sampler not found: {name!r}; available: {names}")


def explicit_schedule(scheduler: str | None) -> str | None:
    """The schedule an A1111 ``scheduler`` names; None for none or "Automatic" (per sampler)."""
    if scheduler is None or scheduler.strip().lower() in ("", A1111_AUTOMATIC):
        return None
    wanted = find_schedule(scheduler)
    if wanted is None:
        names = ", ".join(entry.name for entry in scheduler_list())
        raise UnknownSamplerError(
            "scheduler", f"Scheduler not supported: {scheduler!r}; available: {names}"
        )
    return wanted


def sampler_list() -> list[SamplerItem]:
    """GET /sdapi/v1/samplers: every sampler Impasto runs, named as A1111 names it."""
    return [
        SamplerItem(name=spec.a1111_name, aliases=[*spec.aliases, spec.id], options={})
        for spec in SAMPLER_SPECS.values()
    ]


def scheduler_list() -> list[SchedulerItem]:
    """GET /sdapi/v1/schedulers: A1111's "automatic" (per sampler), then Impasto's schedules."""
    entries: list[tuple[str, str, list[str] | None, float]] = [
        (A1111_AUTOMATIC, "Automatic", None, -1.0),
        *(
            (
                spec.a1111_name,
                spec.label,
                [spec.id] if spec.id != spec.a1111_name else None,
                spec.rho,
            )
            for spec in SCHEDULE_SPECS.values()
        ),
    ]
    return [
        SchedulerItem(
            name=name, label=label, aliases=aliases, default_rho=rho, need_inner_model=False
        )
        for name, label, aliases, rho in entries
    ]
