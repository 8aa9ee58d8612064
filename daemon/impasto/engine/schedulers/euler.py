"""Euler: the first-order ODE sampler of Karras et al. (k-diffusion ``sample_euler``;
diffusers' EulerDiscreteScheduler)."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .loop import Loop, LoopSampler


def euler(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn) -> Loop:
    """Deterministic Euler steps along the probability-flow ODE in sigma."""
    for i in range(len(sigmas) - 1):
        sigma = float(sigmas[i])
        x, denoised = yield x, sigma
        x = x + (x - denoised) / sigma * (float(sigmas[i + 1]) - sigma)
    return x


class EulerSampler(LoopSampler):
    """Euler, starting from diffusers' initial noise level (it is compared with diffusers)."""

    diffusers_start = True
    loop = staticmethod(euler)
