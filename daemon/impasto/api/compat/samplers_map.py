"""AUTOMATIC1111 sampler and scheduler names to Impasto's sampler ids and schedules, both ways."""

from __future__ import annotations

from dataclasses import dataclass

from impasto.engine.schedulers import SAMPLERS

# Impasto sampler id -> (A1111 name, A1111 aliases), as A1111's sd_samplers_*.py list them.
A1111_SAMPLERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dpmpp_2m": ("DPM++ 2M", ("k_dpmpp_2m",)),
    "dpmpp_2m_sde": ("DPM++ 2M SDE", ("k_dpmpp_2m_sde",)),
    "euler_a": ("Euler a", ("k_euler_a", "k_euler_ancestral")),
    "euler": ("Euler", ("k_euler",)),
    "lms": ("LMS", ("k_lms",)),
    "heun": ("Heun", ("k_heun",)),
    "ddim": ("DDIM", ("ddim",)),
    "pndm": ("PLMS", ("plms", "PNDM")),
    "unipc": ("UniPC", ("unipc",)),
    "lcm": ("LCM", ("k_lcm",)),
}

# Impasto schedule -> (A1111 scheduler name, label, default rho).
A1111_SCHEDULERS: dict[str, tuple[str, str, float]] = {
    "default": ("automatic", "Automatic", -1.0),
    "karras": ("karras", "Karras", 7.0),
    "exponential": ("exponential", "Exponential", -1.0),
}

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


def _sampler_lookup() -> dict[str, str]:
    table: dict[str, str] = {}
    for sampler_id in SAMPLERS:
        name, aliases = A1111_SAMPLERS.get(sampler_id, (sampler_id, ()))
        for key in (sampler_id, name, *aliases):
            table[key.lower()] = sampler_id
    return table


def _schedule_lookup() -> dict[str, str]:
    table: dict[str, str] = {}
    for schedule, (name, label, _) in A1111_SCHEDULERS.items():
        for key in (schedule, name, label):
            table[key.lower()] = schedule
    return table


def to_impasto(sampler_name: str | None, scheduler: str | None = None) -> SamplerChoice:
    """("DPM++ 2M", "Karras"), ("DPM++ 2M Karras", None) or ("euler_a", None) -> a choice.

    An explicit scheduler other than automatic wins over a legacy suffix in the name.
    """
    samplers = _sampler_lookup()
    key = (sampler_name or "Euler a").strip().lower()
    legacy_schedule = "default"
    if key not in samplers:
        for suffix, schedule in _LEGACY_SUFFIXES.items():
            if key.endswith(suffix) and key[: -len(suffix)] in samplers:
                key, legacy_schedule = key[: -len(suffix)], schedule
                break
    if key not in samplers:
        names = ", ".join(name for name, _ in A1111_SAMPLERS.values())
        raise UnknownSamplerError(
            "sampler_name", f"Sampler not found: {sampler_name!r}; available: {names}"
        )
    schedule = legacy_schedule
    if scheduler:
        schedules = _schedule_lookup()
        wanted = schedules.get(scheduler.strip().lower())
        if wanted is None:
            names = ", ".join(name for name, _, _ in A1111_SCHEDULERS.values())
            raise UnknownSamplerError(
                "scheduler", f"Scheduler not supported: {scheduler!r}; available: {names}"
            )
        if wanted != "default":
            schedule = wanted
    return SamplerChoice(samplers[key], schedule)


def sampler_label(sampler_id: str) -> str:
    """The A1111 name of an Impasto sampler id ("dpmpp_2m" -> "DPM++ 2M")."""
    return A1111_SAMPLERS.get(sampler_id, (sampler_id, ()))[0]


def schedule_label(schedule: str) -> str:
    """The A1111 label of an Impasto schedule ("karras" -> "Karras")."""
    return A1111_SCHEDULERS.get(schedule, (schedule, schedule.title(), -1.0))[1]


def sampler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/samplers: every sampler Impasto runs, named as A1111 names it."""
    out: list[dict[str, object]] = []
    for sampler_id in SAMPLERS:
        name, aliases = A1111_SAMPLERS.get(sampler_id, (sampler_id, ()))
        out.append({"name": name, "aliases": [*aliases, sampler_id], "options": {}})
    return out


def scheduler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/schedulers: the schedules Impasto runs, named as A1111 names them."""
    return [
        {
            "name": name,
            "label": label,
            "aliases": [schedule] if schedule != name else None,
            "default_rho": rho,
            "need_inner_model": False,
        }
        for schedule, (name, label, rho) in A1111_SCHEDULERS.items()
    ]
