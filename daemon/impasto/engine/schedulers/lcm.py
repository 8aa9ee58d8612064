"""LCM: latent consistency model sampling (diffusers LCMScheduler)."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn, SchedulerConfig
from .sigmas import vp_denoised
from .vp_base import AlphaSampler

SIGMA_DATA = 0.5


class LCMSampler(AlphaSampler):
    """Jump to the consistency model's clean estimate, then re-noise to the next timestep.

    LCM lays out its own timesteps from the distillation's ``original_inference_steps``
    grid, so ``timestep_spacing`` does not apply.
    """

    def __init__(
        self,
        config: SchedulerConfig,
        schedule: str = "default",
        original_inference_steps: int = 50,
        timestep_scaling: float = 10.0,
        *,
        eta: float | None = None,
    ) -> None:
        """The defaults are those of the published LCM scheduler configs."""
        super().__init__(config, schedule, eta)
        self.original_inference_steps = original_inference_steps
        self.timestep_scaling = timestep_scaling

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Pick ``num_inference_steps`` evenly from the distillation's timestep grid."""
        original = self.original_inference_steps
        grid = np.arange(1, original + 1) * (self.config.num_train_timesteps // original) - 1
        if num_inference_steps > len(grid):
            raise ValueError(
                f"LCM supports at most {len(grid)} steps (original_inference_steps); "
                f"got {num_inference_steps}"
            )
        picks = np.floor(np.linspace(0, len(grid), num_inference_steps, endpoint=False))
        self.timesteps = grid[::-1][picks.astype(np.int64)].astype(np.float64)
        scaled = self.timesteps * self.timestep_scaling
        self.c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
        self.c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """Denoise with the consistency boundary condition; re-noise unless this is the last."""
        alpha = self.alpha_at(float(self.timesteps[index]))
        x0 = vp_denoised(
            model_output, sample, alpha**0.5, (1 - alpha) ** 0.5, self.config.prediction_type
        )
        if self.config.clip_sample:
            x0 = np.clip(x0, -1.0, 1.0)
        denoised = float(self.c_out[index]) * x0 + float(self.c_skip[index]) * sample
        if index == len(self.timesteps) - 1:
            return denoised.astype(sample.dtype, copy=False)
        alpha_prev = self.alpha_at(float(self.timesteps[index + 1]))
        fresh = noise(sample.shape).astype(sample.dtype, copy=False)
        return (alpha_prev**0.5 * denoised + (1 - alpha_prev) ** 0.5 * fresh).astype(
            sample.dtype, copy=False
        )
