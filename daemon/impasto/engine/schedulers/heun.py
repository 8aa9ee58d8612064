"""Heun: the second-order Karras ODE sampler (diffusers HeunDiscreteScheduler).

Every step but the last costs two UNet calls, so ``timesteps`` holds 2N-1 entries laid
out like diffusers': t0, t1, t1, t2, t2, ... Even indices are Euler predictions, odd
indices the trapezoidal corrections of the step just predicted.
"""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .k_base import SigmaSampler
from .sigmas import k_denoised, k_schedule, sigma_to_t, train_sigmas


class HeunSampler(SigmaSampler):
    """Predict with Euler, correct with the average of both slopes."""

    order: int = 2

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the 2N-1 UNet calls and their 2N sigmas (2N and 2N+1 if ending above 0)."""
        timesteps, sigmas, ac = k_schedule(self.config, num_inference_steps, self.schedule)
        self.timesteps = np.concatenate([timesteps[:1], np.repeat(timesteps[1:], 2)])
        self.sigmas = np.concatenate([sigmas[:1], np.repeat(sigmas[1:-1], 2), sigmas[-1:]])
        if sigmas[-1] > 0:  # KL Optimal: the last step is corrected too, at the last sigma
            last = sigma_to_t(sigmas[-1:], np.log(train_sigmas(ac)))
            self.timesteps = np.concatenate([self.timesteps, last])
            self.sigmas = np.append(self.sigmas, sigmas[-1])
        self._after_schedule()

    def _reset(self) -> None:
        self._prediction: tuple[int, np.ndarray, np.ndarray] | None = None

    def _clip(self, denoised: np.ndarray) -> np.ndarray:
        return np.clip(denoised, -1.0, 1.0) if self.config.clip_sample else denoised

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """Predict at even indices, correct the prediction at odd ones."""
        prediction_type = self.config.prediction_type
        if index % 2 == 0:
            sigma, sigma_next = float(self.sigmas[index]), float(self.sigmas[index + 1])
            denoised = self._clip(k_denoised(model_output, sample, sigma, prediction_type))
            derivative = (sample - denoised) / sigma
            self._prediction = (index, sample, derivative)
            return (sample + derivative * (sigma_next - sigma)).astype(sample.dtype, copy=False)
        if self._prediction is None or self._prediction[0] != index - 1:
            # A run that starts on a correction has no prediction to correct: the sample
            # already sits at this sigma, so the next (prediction) call carries on from it.
            return sample
        _, start, first_derivative = self._prediction
        self._prediction = None
        sigma, sigma_next = float(self.sigmas[index - 1]), float(self.sigmas[index])
        denoised = self._clip(k_denoised(model_output, sample, sigma_next, prediction_type))
        derivative = ((sample - denoised) / sigma_next + first_derivative) / 2
        return (start + derivative * (sigma_next - sigma)).astype(sample.dtype, copy=False)
