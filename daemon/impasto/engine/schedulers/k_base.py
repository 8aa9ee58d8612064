"""The shared body of the sigma-parametrised (k-diffusion style) samplers."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .base import SchedulerConfig
from .churn import Churn
from .common import Sampler
from .schedules import NAMED_SCHEDULES
from .sigmas import SCHEDULES, k_schedule


class SigmaSampler(Sampler):
    """Euler-family bookkeeping: latents live at scale sigma, the UNet sees them rescaled."""

    discards_penultimate: ClassVar[bool | None] = False

    schedules: ClassVar[tuple[str, ...]] = SCHEDULES

    def __init__(
        self,
        config: SchedulerConfig,
        schedule: str = "default",
        eta: float | None = None,
        churn: Churn | None = None,
    ) -> None:
        """Keep the config; nothing is laid out until ``set_timesteps``."""
        super().__init__(config, schedule, eta, churn)
        self.sigmas = np.zeros(1)
        self.init_noise_sigma = 1.0

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out one timestep and sigma per step; the sigmas end at 0."""
        self.timesteps, self.sigmas, _ = k_schedule(self.config, num_inference_steps, self.schedule)
        self._after_schedule()

    def _after_schedule(self, top: float | None = None) -> None:
        """Derive the start noise level from the top sigma (the sigmas' largest unless given)
        and reset per-run state."""
        top = float(self.sigmas.max()) if top is None else top
        # Under "leading" spacing diffusers starts from a unit-variance-scaled top sigma;
        # the A1111/ComfyUI schedules start at the top sigma, as k-diffusion does.
        at_top = self.config.timestep_spacing in ("linspace", "trailing") or (
            self.schedule in NAMED_SCHEDULES
        )
        self.init_noise_sigma = self._start_scale(top, at_top)
        self._reset()

    def _start_scale(self, top: float, at_top: bool = True) -> float:
        """The pure-noise start's scale: ``top`` where the sampler starts at its top sigma,
        else (or with the run's SGM noise multiplier) sqrt(top^2 + 1), unit variance as the
        UNet sees it."""
        return top if at_top and not self.config.sgm_noise_multiplier else (top**2 + 1) ** 0.5

    def _reset(self) -> None:
        """Forget the state of a previous run."""

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        """Divide by sqrt(sigma^2 + 1) so the UNet sees unit-variance input."""
        sigma = float(self.sigmas[index])
        return sample / (sigma**2 + 1) ** 0.5

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Add noise at sigma of ``index``: x + sigma * noise."""
        return original + noise * float(self.sigmas[index])
