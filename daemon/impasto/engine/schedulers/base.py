"""The one scheduler Protocol every sampler implements, and the model-folder config it reads."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

import numpy as np

NoiseFn = Callable[[tuple[int, ...]], np.ndarray]
"""Draws standard-normal noise of a shape; row i comes from batch image i's own generator."""


def draw(noise: NoiseFn, x: np.ndarray) -> np.ndarray:
    """Standard-normal noise shaped and typed like ``x``."""
    return noise(x.shape).astype(x.dtype, copy=False)


@dataclass(frozen=True)
class SchedulerConfig:
    """The fields of a model folder's ``scheduler/scheduler_config.json`` that samplers use."""

    num_train_timesteps: int = 1000
    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"
    steps_offset: int = 1
    set_alpha_to_one: bool = False
    clip_sample: bool = False
    rescale_betas_zero_snr: bool = False
    sigma_min: float | None = None
    """A request's lowest sigma for the schedules that span a range (``SIGMA_RANGE_SCHEDULES``:
    Karras, exponential...) instead of their own; None keeps theirs. Like ``sigma_max`` and
    ``rho``, a run's setting (A1111's schedule options), never read from a model folder."""
    sigma_max: float | None = None
    """A request's highest sigma for those schedules instead of their own; None keeps theirs."""
    rho: float | None = None
    """A request's rho for Karras (7) and polyexponential (1) instead of theirs."""
    discard_penultimate: bool = False
    """Lay out one step more and drop the last sigma before the end (A1111's and ComfyUI's
    "discard next-to-last sigma": DPM2 and DPM2 a always, others on request)."""
    sgm_noise_multiplier: bool = False
    """Start from pure noise at sqrt(sigma^2 + 1) times it, where the sampler would start at
    sigma times it: the UNet's first input is then the unit noise itself (A1111's "SGM noise
    multiplier", the start of Stability's SDXL code). A sampler that already starts there
    (diffusers' "leading" schedules, DDIM, the solvers' own schedules) is unchanged."""
    unipc_order: int | None = None
    """UniPC's order (1 to 3; None: 2), A1111's "UniPC order" (diffusers' ``solver_order``)."""
    unipc_variant: str | None = None
    """UniPC's variant, ``bh1`` or ``bh2`` (None: bh2), A1111's "UniPC variant" (diffusers'
    ``solver_type``)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SchedulerConfig:
        """Build from a diffusers scheduler config, ignoring keys samplers do not use (and the
        run's settings, ``RUN_SETTINGS``, which a model's config does not set here)."""
        names = {f.name for f in fields(cls)} - set(RUN_SETTINGS)
        return cls(**{k: v for k, v in data.items() if k in names and v is not None})


RUN_BOUNDS = ("sigma_min", "sigma_max", "rho")
"""The ``SchedulerConfig`` fields for a schedule's ends and curvature, which a run sets."""
RUN_SETTINGS = (
    *RUN_BOUNDS,
    "discard_penultimate",
    "sgm_noise_multiplier",
    "unipc_order",
    "unipc_variant",
)
"""The ``SchedulerConfig`` fields a run sets, never a model folder."""


class Scheduler(Protocol):
    """A sampler: ``timesteps`` has one entry per UNet call, addressed by its index."""

    timesteps: np.ndarray
    init_noise_sigma: float
    order: int
    cfg_pp_divisor: float
    """Non-zero for CFG++ samplers: the loop divides the guidance scale by it and sets
    ``uncond_output`` (the unconditional model output) before each ``step``."""
    uncond_output: np.ndarray | None

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out ``timesteps`` for a run of ``num_inference_steps`` steps and reset state."""
        ...

    def start_at(self, step: int) -> int:
        """Prepare a run that starts at schedule step ``step`` (img2img); its first index."""
        ...

    def prepare(self, sample: np.ndarray, index: int, noise: NoiseFn) -> np.ndarray:
        """The latents the UNet call at ``timesteps[index]`` is made on: ``sample``, or ``sample``
        with noise added where the sampler raises the noise level first (sigma churn)."""
        ...

    def resume_at(self, index: int) -> None:
        """The latents handed in at call ``index`` were prepared by another sampler's run (the
        base model's, before a refiner takes over): ``prepare`` adds no noise to them again."""
        ...

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        """Scale the latents before the UNet call at ``timesteps[index]``."""
        ...

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """Advance ``sample`` past ``timesteps[index]`` given the UNet's output there."""
        ...

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Noise clean latents to the level the sampler expects at ``timesteps[index]``."""
        ...
