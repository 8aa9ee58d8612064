"""Euler: the first-order ODE sampler of Karras et al. (k-diffusion ``sample_euler``;
diffusers' EulerDiscreteScheduler), with optional sigma churn (``churn.py``)."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .churn import NO_CHURN, Churn
from .loop import Loop, LoopSampler


def euler(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, churn: Churn = NO_CHURN) -> Loop:
    """Euler steps along the probability-flow ODE in sigma, each from its churned sigma."""
    for i in range(len(sigmas) - 1):
        x, sigma = churn.raise_noise(x, sigmas, i, noise)
        x, denoised = yield x, sigma
        x = x + (x - denoised) / sigma * (float(sigmas[i + 1]) - sigma)
    return x


class EulerSampler(LoopSampler):
    """Euler, starting from diffusers' initial noise level (it is compared with diffusers)."""

    diffusers_start = True
    takes_churn = True
    loop = staticmethod(euler)
