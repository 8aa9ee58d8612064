"""What each registered sampler takes (schedules, eta, sigma churn, sigma-only settings), and
making one for a run: the questions asked of the registry's table."""

from __future__ import annotations

import inspect

from .base import Scheduler, SchedulerConfig
from .churn import Churn
from .common import Sampler
from .registry import SAMPLER_SPECS, sampler_spec
from .unipc import UniPCSampler


def sampler_schedules(name: str) -> tuple[str, ...]:
    """The sigma schedules sampler ``name`` supports ("default" is always first)."""
    return sampler_spec(name).schedules


def eta_default(name: str) -> float | None:
    """The ``eta`` sampler ``name`` runs with when a request names none (1 for the ancestral and
    SDE samplers, 0 for DDIM); None for a sampler that adds no noise per step, or none known."""
    spec = SAMPLER_SPECS.get(name)
    return spec.cls.eta_default if spec is not None else None


def eta_samplers() -> tuple[str, ...]:
    """The samplers that add fresh noise per step, so take an ``eta``."""
    return tuple(name for name in SAMPLER_SPECS if eta_default(name) is not None)


def sampler_eta(name: str, eta: float | None) -> float | None:
    """``eta`` for sampler ``name``: itself where the sampler takes one, else None."""
    return eta if sampler_spec(name).cls.eta_default is not None else None


def takes_churn(cls: type[Sampler]) -> bool:
    """Whether ``cls`` takes sigma churn: it says so and its constructor has ``churn`` (a
    plugin's subclass of Euler with its own older constructor does not)."""
    if not cls.takes_churn:
        return False
    try:
        return "churn" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def churn_samplers() -> tuple[str, ...]:
    """The samplers that take sigma churn (Euler, Heun, DPM2 and plugins' subclasses)."""
    return tuple(name for name, spec in SAMPLER_SPECS.items() if takes_churn(spec.cls))


def sampler_churn(name: str, churn: Churn | None) -> Churn | None:
    """``churn`` for sampler ``name``: itself where the sampler takes it, else None."""
    return churn if takes_churn(sampler_spec(name).cls) else None


def sigma_samplers() -> tuple[str, ...]:
    """The samplers that walk k-diffusion sigmas (A1111's k-diffusion ones), not timesteps:
    they discard the next-to-last sigma on request (DPM2 and DPM2 a always) and take the SGM
    noise multiplier."""
    return tuple(
        name
        for name, spec in SAMPLER_SPECS.items()
        if getattr(spec.cls, "discards_penultimate", None) is not None
    )


def unipc_samplers() -> tuple[str, ...]:
    """The samplers that take UniPC's order and variant (UniPC and plugins' subclasses)."""
    return tuple(name for name, spec in SAMPLER_SPECS.items() if issubclass(spec.cls, UniPCSampler))


def sampler_discards(name: str, requested: bool) -> bool:
    """Whether sampler ``name`` runs without the next-to-last sigma: always for DPM2 and DPM2 a,
    on ``requested`` for the others that can, never for the timestep samplers."""
    own = getattr(sampler_spec(name).cls, "discards_penultimate", None)
    return bool(own) or (requested and own is not None)


def create_scheduler(
    name: str,
    config: SchedulerConfig,
    schedule: str = "default",
    eta: float | None = None,
    churn: Churn | None = None,
) -> Scheduler:
    """A fresh sampler ``name`` for a model's scheduler config, on sigma ``schedule``, adding
    ``eta`` times its fresh noise per step (None: its default; only samplers that add noise)
    and sigma ``churn`` (only samplers that take it)."""
    cls = sampler_spec(name).cls
    if schedule not in cls.schedules:
        raise ValueError(
            f"sampler {name!r} does not support the {schedule!r} schedule; "
            f"choose one of: {', '.join(cls.schedules)}"
        )
    if churn is not None and not takes_churn(cls):
        raise ValueError(f"sampler {name!r} has no sigma churn")
    # Only what is asked for: the two-argument call a plugin's own sampler class may define.
    options: dict[str, float | Churn] = {}
    if eta is not None:
        options["eta"] = eta
    if churn is not None:
        options["churn"] = churn
    return cls(config, schedule, **options)  # type: ignore[arg-type]
