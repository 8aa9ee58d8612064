"""Euler ancestral: Euler steps that re-inject fresh noise (k-diffusion
``sample_euler_ancestral``; diffusers' EulerAncestralDiscreteScheduler).

diffusers' own scheduler has no Karras or exponential option; here those schedules use
the sigmas of EulerDiscreteScheduler's, as k-diffusion and A1111 do.
"""

from __future__ import annotations

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler, ancestral_step


def euler_ancestral(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """Step down to sigma_down deterministically, then add noise of size sigma_up."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        x, denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        x = x + (x - denoised) / sigma * (sigma_down - sigma)
        if sigma_next > 0:
            x = x + draw(noise, x) * sigma_up
    return x


class EulerAncestralSampler(LoopSampler):
    """Euler a, starting from diffusers' initial noise level (it is compared with diffusers)."""

    diffusers_start = True
    eta_default = 1.0
    loop = staticmethod(euler_ancestral)
