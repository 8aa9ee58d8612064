"""Euler: the first-order ODE sampler of Karras et al. (diffusers EulerDiscreteScheduler)."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .k_base import SigmaSampler
from .sigmas import k_denoised


class EulerSampler(SigmaSampler):
    """Deterministic Euler steps along the probability-flow ODE in sigma."""

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One Euler step from sigma[index] to sigma[index + 1]."""
        sigma, sigma_next = float(self.sigmas[index]), float(self.sigmas[index + 1])
        denoised = k_denoised(model_output, sample, sigma, self.config.prediction_type)
        derivative = (sample - denoised) / sigma
        return (sample + derivative * (sigma_next - sigma)).astype(sample.dtype, copy=False)
