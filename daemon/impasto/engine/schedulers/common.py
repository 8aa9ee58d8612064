"""The base class the samplers share: config, schedule check and the Protocol's methods."""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from .base import NoiseFn, SchedulerConfig
from .churn import Churn


class Sampler:
    """Implements ``base.Scheduler``; subclasses lay out timesteps and step."""

    timesteps: np.ndarray
    init_noise_sigma: float = 1.0
    order: int = 1
    cfg_pp_divisor: float = 0.0
    uncond_output: np.ndarray | None = None
    schedules: ClassVar[tuple[str, ...]] = ("default",)
    eta_default: ClassVar[float | None] = None
    """How much fresh noise each step adds when a request names no ``eta`` (A1111's: 1 for the
    ancestral and SDE samplers, 0 for DDIM); None for samplers that add none."""
    takes_churn: ClassVar[bool] = False
    """Whether it takes sigma churn (``churn.Churn``): Euler, Heun and DPM2, as in k-diffusion."""
    discards_penultimate: ClassVar[bool | None] = None
    """Whether it drops the next-to-last sigma of one step more: True always (DPM2, DPM2 a, as
    in A1111 and ComfyUI), False on request (A1111's other k-diffusion samplers), None never
    (the samplers that walk timesteps: DDIM, PLMS, UniPC, LCM)."""

    def __init__(
        self,
        config: SchedulerConfig,
        schedule: str = "default",
        eta: float | None = None,
        churn: Churn | None = None,
    ) -> None:
        """Keep the config; nothing is laid out until ``set_timesteps``."""
        if schedule not in self.schedules:
            raise ValueError(
                f"{type(self).__name__} does not support the {schedule!r} sigma schedule; "
                f"use one of: {', '.join(self.schedules)}"
            )
        if eta is not None and self.eta_default is None:
            raise ValueError(f"{type(self).__name__} adds no noise per step: it has no eta")
        if churn is not None and not self.takes_churn:
            raise ValueError(f"{type(self).__name__} has no sigma churn")
        if self.discards_penultimate:
            config = replace(config, discard_penultimate=True)
        elif config.discard_penultimate and self.discards_penultimate is None:
            raise ValueError(f"{type(self).__name__} walks timesteps: it discards no sigma")
        self.config = config
        self.schedule = schedule
        self.eta = self.eta_default if eta is None else eta
        self.churn = churn
        self.timesteps = np.zeros(0)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out ``timesteps`` for a run and reset state."""
        raise NotImplementedError

    def start_at(self, step: int) -> int:
        """Prepare a run that starts at schedule step ``step`` (img2img); its first index."""
        return step * self.order

    def prepare(self, sample: np.ndarray, index: int, noise: NoiseFn) -> np.ndarray:
        """The latents the UNet call at ``timesteps[index]`` is made on (here ``sample``)."""
        return sample

    def resume_at(self, index: int) -> None:
        """Nothing to do: ``prepare`` adds no noise here."""

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        """Scale the latents before the UNet call at ``timesteps[index]``."""
        raise NotImplementedError

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """Advance ``sample`` past ``timesteps[index]``."""
        raise NotImplementedError

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Noise clean latents to the level of ``timesteps[index]``."""
        raise NotImplementedError
