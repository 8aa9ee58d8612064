"""Sigma churn: the stochastic step of Karras et al. 2022 ("Elucidating the Design Space of
Diffusion-Based Generative Models", algorithm 2) for the Euler, Heun and DPM2 samplers.

Before a step's first model call the latents' noise is raised from sigma to
``sigma_hat = sigma * (1 + gamma)`` with fresh noise times ``noise``, where
``gamma = min(amount / steps, sqrt(2) - 1)`` for sigmas in ``[tmin, tmax]`` and 0 elsewhere;
the step then runs from ``sigma_hat``. These are k-diffusion's ``s_churn``, ``s_tmin``,
``s_tmax`` and ``s_noise`` (``sample_euler``, ``sample_heun``, ``sample_dpm_2``) and
AUTOMATIC1111's "Sigma churn", "Sigma tmin", "Sigma tmax" and "Sigma noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import NoiseFn, draw

MAX_GAMMA = 2**0.5 - 1
"""Karras et al. cap gamma so that a step at most doubles the noise variance."""


@dataclass(frozen=True)
class Churn:
    """How much noise each step adds back before its model call, and where."""

    amount: float = 0.0
    tmin: float = 0.0
    tmax: float = math.inf
    noise: float = 1.0
    steps: int = 0
    """The step count ``amount`` is spread over; 0: the run's own (its sigmas less one)."""
    resumed: bool = False
    """The run continues one that already raised its first step's noise (a refiner's)."""

    def raise_noise(
        self, x: np.ndarray, sigmas: np.ndarray, i: int, noise: NoiseFn
    ) -> tuple[np.ndarray, float]:
        """``x`` raised to step ``i``'s ``sigma_hat``, and ``sigma_hat``.

        With churn on, every step draws its noise, used or not, as k-diffusion does, so the
        draws after it are the same whatever ``tmin`` and ``tmax`` leave out.
        """
        sigma = float(sigmas[i])
        if not self.amount:
            return x, sigma
        steps = self.steps or len(sigmas) - 1
        gamma = min(self.amount / steps, MAX_GAMMA) if self.tmin <= sigma <= self.tmax else 0.0
        sigma_hat = sigma * (gamma + 1)
        if i == 0 and self.resumed:
            return x, sigma_hat
        eps = draw(noise, x) * np.float32(self.noise)
        if gamma > 0:
            x = x + eps * np.float32((sigma_hat**2 - sigma**2) ** 0.5)
        return x, sigma_hat


NO_CHURN = Churn()
"""The default of the loops that take churn: none."""
