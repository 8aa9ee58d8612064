"""Euler ancestral: Euler steps that re-inject fresh noise (diffusers EulerAncestralDiscrete).

diffusers' own scheduler has no Karras or exponential option; here those schedules use
the sigmas and timesteps of EulerDiscreteScheduler's, as k-diffusion and A1111 do.
"""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .k_base import SigmaSampler
from .sigmas import k_denoised


class EulerAncestralSampler(SigmaSampler):
    """Step down to sigma_down deterministically, then add noise of size sigma_up."""

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the sigmas and precompute each step's sigma_up and sigma_down."""
        super().set_timesteps(num_inference_steps)
        s_from, s_to = self.sigmas[:-1], self.sigmas[1:]
        self.sigma_up = np.sqrt(s_to**2 * (s_from**2 - s_to**2) / s_from**2)
        self.sigma_down = np.sqrt(s_to**2 - self.sigma_up**2)

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One ancestral step; draws one noise tensor through ``noise`` every step."""
        sigma = float(self.sigmas[index])
        denoised = k_denoised(model_output, sample, sigma, self.config.prediction_type)
        derivative = (sample - denoised) / sigma
        prev = sample + derivative * (float(self.sigma_down[index]) - sigma)
        # Drawn even when sigma_up is 0 (last step) so the n-th draw always feeds step n.
        fresh = noise(sample.shape).astype(sample.dtype, copy=False)
        return (prev + fresh * float(self.sigma_up[index])).astype(sample.dtype, copy=False)
