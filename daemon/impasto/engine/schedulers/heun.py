"""Heun: the second-order Karras ODE sampler (k-diffusion ``sample_heun``; diffusers'
HeunDiscreteScheduler). Every step but one into sigma 0 costs two UNet calls."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn
from .churn import NO_CHURN, Churn
from .loop import Loop, LoopSampler


def heun(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, churn: Churn = NO_CHURN) -> Loop:
    """Predict with Euler, correct with the average of both slopes (from the churned sigma)."""
    for i in range(len(sigmas) - 1):
        x, sigma = churn.raise_noise(x, sigmas, i, noise)
        sigma_next = float(sigmas[i + 1])
        x, denoised = yield x, sigma
        d = (x - denoised) / sigma
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
            continue
        x_2 = x + d * (sigma_next - sigma)
        x_2, denoised_2 = yield x_2, sigma_next
        x = x + (d + (x_2 - denoised_2) / sigma_next) / 2 * (sigma_next - sigma)
    return x


class HeunSampler(LoopSampler):
    """Heun, starting from diffusers' initial noise level (it is compared with diffusers)."""

    order: int = 2
    diffusers_start = True
    takes_churn = True
    loop = staticmethod(heun)
