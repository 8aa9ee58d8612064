"""DDIM: denoising diffusion implicit models (diffusers DDIMScheduler)."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .sigmas import spaced_timesteps
from .vp_base import AlphaSampler


class DDIMSampler(AlphaSampler):
    """Deterministic at ``eta=0``; ``eta > 0`` adds DDPM-like noise through the noise function
    (``eta`` scales the per-step noise: 0 is DDIM, 1 is DDPM's posterior variance)."""

    eta_default = 0.0

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the integer timesteps of ``config.timestep_spacing``."""
        self.timesteps = spaced_timesteps(self.config, num_inference_steps, integer=True)
        # diffusers steps back by a fixed T // N whatever the spacing; kept so outputs agree.
        stride = self.config.num_train_timesteps // num_inference_steps
        self.prev_timesteps = self.timesteps - stride

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One DDIM update from timesteps[index] to the next timestep."""
        alpha = self.alpha_at(float(self.timesteps[index]))
        alpha_prev = self.alpha_at(float(self.prev_timesteps[index]))
        a, s = alpha**0.5, (1 - alpha) ** 0.5
        prediction_type = self.config.prediction_type
        if prediction_type == "epsilon":
            x0, eps = (sample - s * model_output) / a, model_output
        elif prediction_type == "v_prediction":
            x0, eps = a * sample - s * model_output, a * model_output + s * sample
        elif prediction_type == "sample":
            x0, eps = model_output, (sample - a * model_output) / s
        else:
            raise ValueError(f"unknown prediction_type {prediction_type!r}")
        if self.config.clip_sample:
            x0 = np.clip(x0, -1.0, 1.0)
        variance = ((1 - alpha_prev) / (1 - alpha)) * (1 - alpha / alpha_prev)
        std = (self.eta or 0.0) * variance**0.5
        prev = alpha_prev**0.5 * x0 + (1 - alpha_prev - std**2) ** 0.5 * eps
        if (self.eta or 0.0) > 0:
            prev = prev + std * noise(sample.shape).astype(sample.dtype, copy=False)
        return prev.astype(sample.dtype, copy=False)


class DDIMCFGPPSampler(DDIMSampler):
    """DDIM CFG++ (Chung et al. 2024; A1111's "DDIM CFG++"): the clean sample comes from the
    output guided at scale / 12.5, the step back to noise along the unconditional output."""

    cfg_pp_divisor = 12.5

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """A DDIM step whose direction term uses the unconditional noise prediction."""
        plain = super().step(model_output, index, sample, noise)
        if self.uncond_output is None:
            return plain
        alpha = self.alpha_at(float(self.timesteps[index]))
        alpha_prev = self.alpha_at(float(self.prev_timesteps[index]))
        variance = ((1 - alpha_prev) / (1 - alpha)) * (1 - alpha / alpha_prev)
        direction = (1 - alpha_prev - (self.eta or 0.0) ** 2 * variance) ** 0.5
        swap = self._eps(self.uncond_output, sample, alpha) - self._eps(model_output, sample, alpha)
        return (plain + direction * swap).astype(sample.dtype, copy=False)

    def _eps(self, output: np.ndarray, sample: np.ndarray, alpha: float) -> np.ndarray:
        a, s = alpha**0.5, (1 - alpha) ** 0.5
        if self.config.prediction_type == "epsilon":
            return output
        if self.config.prediction_type == "v_prediction":
            return a * output + s * sample
        return (sample - a * output) / s
