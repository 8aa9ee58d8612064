"""Sampler and schedule names as users and other tools write them, resolved to the registry's ids.

Requests, the AUTOMATIC1111 API and PNG-info readers name samplers by id, label, A1111 name or
alias in any case, and (before A1111 1.9) with the schedule inside the name ("DPM++ 2M
Karras"); schedules by id, A1111 name or label. Every such lookup is here, over the one table
in ``registry``.
"""

from __future__ import annotations

from .registry import SAMPLER_SPECS, SCHEDULE_SPECS


def find_sampler(name: str) -> str | None:
    """The sampler id any of its names means ("PLMS", "DPM++ 2M", "k_euler"), any case."""
    key = name.strip().lower()
    for spec in SAMPLER_SPECS.values():
        if key in (n.lower() for n in spec.names):
            return spec.id
    return None


# Before A1111 1.9 the schedule was part of the sampler name: "DPM++ 2M Karras", "k_dpm_2_ka".
LEGACY_SUFFIXES = {" karras": "karras", " exponential": "exponential", "_ka": "karras"}


def find_sampler_and_schedule(name: str) -> tuple[str, str | None] | None:
    """The sampler id of any of its names, and the schedule a pre-1.9 combined name carries
    ("DPM++ 2M Karras" -> ("dpmpp_2m", "karras"); "Euler a" -> ("euler_a", None)); None when
    the name means no sampler."""
    key = name.strip()
    found = find_sampler(key)
    if found is not None:
        return found, None
    for suffix, schedule in LEGACY_SUFFIXES.items():
        if key.lower().endswith(suffix):
            found = find_sampler(key[: -len(suffix)])
            if found is not None:
                return found, schedule
    return None


def find_schedule(name: str | None) -> str | None:
    """The schedule id of a schedule id, A1111 scheduler name or label; "" means default.

    A1111's "Automatic" (``A1111_AUTOMATIC``) is a per-sampler choice: None here.
    """
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
