"""AUTOMATIC1111 sampler and scheduler names to Impasto's sampler ids and schedules, both ways."""

from __future__ import annotations

from dataclasses import dataclass

from impasto.engine.schedulers import (
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    find_sampler,
    find_schedule,
    sampler_label,
    schedule_label,
)

__all__ = [
    "SamplerChoice",
    "UnknownSamplerError",
    "sampler_label",
    "sampler_list",
    "schedule_label",
    "scheduler_list",
    "to_impasto",
]

# Before A1111 1.9 the schedule was part of the sampler name: "DPM++ 2M Karras".
_LEGACY_SUFFIXES = {" karras": "karras", " exponential": "exponential", "_ka": "karras"}


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

    An explicit scheduler other than automatic wins over a legacy suffix in the name.
    """
    key = (sampler_name or "Euler a").strip()
    legacy_schedule = "default"
    found = find_sampler(key)
    if found is None:
        for suffix, schedule in _LEGACY_SUFFIXES.items():
            if key.lower().endswith(suffix):
                found = find_sampler(key[: -len(suffix)])
                if found is not None:
                    legacy_schedule = schedule
                    break
    if found is None:
        names = ", ".join(spec.a1111_name for spec in SAMPLER_SPECS.values())
        raise UnknownSamplerError(
            "sampler_name", f"Sampler not found: {sampler_name!r}; available: {names}"
        )
    schedule = legacy_schedule
    if scheduler:
        wanted = find_schedule(scheduler)
        if wanted is None:
            names = ", ".join(spec.a1111_name for spec in SCHEDULE_SPECS.values())
            raise UnknownSamplerError(
                "scheduler", f"Scheduler not supported: {scheduler!r}; available: {names}"
            )
        if wanted != "default":
            schedule = wanted
    return SamplerChoice(found, schedule)


def sampler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/samplers: every sampler Impasto runs, named as A1111 names it."""
    return [
        {"name": spec.a1111_name, "aliases": [*spec.aliases, spec.id], "options": {}}
        for spec in SAMPLER_SPECS.values()
    ]


def scheduler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/schedulers: the schedules Impasto runs, named as A1111 names them."""
    return [
        {
            "name": spec.a1111_name,
            "label": spec.label,
            "aliases": [spec.id] if spec.id != spec.a1111_name else None,
            "default_rho": spec.rho,
            "need_inner_model": False,
        }
        for spec in SCHEDULE_SPECS.values()
    ]
