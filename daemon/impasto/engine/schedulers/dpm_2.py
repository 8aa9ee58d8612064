"""DPM2 and DPM2 ancestral: second-order DPM-Solver steps in sigma (k-diffusion
``sample_dpm_2`` and ``sample_dpm_2_ancestral``, as AUTOMATIC1111's "DPM2" and "DPM2 a")."""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn, draw
from .churn import NO_CHURN, Churn
from .loop import Loop, LoopSampler, ancestral_step


def midpoint(sigma: float, sigma_next: float) -> float:
    """The geometric mean of two sigmas: the midpoint in log-sigma."""
    return math.exp((math.log(sigma) + math.log(sigma_next)) / 2)


def dpm_2(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, churn: Churn = NO_CHURN) -> Loop:
    """Evaluate at the (churned) sigma and at the log-midpoint; an Euler step to sigma 0 at
    the end."""
    for i in range(len(sigmas) - 1):
        x, sigma = churn.raise_noise(x, sigmas, i, noise)
        sigma_next = float(sigmas[i + 1])
        x, denoised = yield x, sigma
        d = (x - denoised) / sigma
        if sigma_next == 0:
            x = x + d * (sigma_next - sigma)
            continue
        sigma_mid = midpoint(sigma, sigma_next)
        x_2 = x + d * (sigma_mid - sigma)
        x_2, denoised_2 = yield x_2, sigma_mid
        x = x + (x_2 - denoised_2) / sigma_mid * (sigma_next - sigma)
    return x


def dpm_2_ancestral(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """DPM2 down to sigma_down, then fresh noise of size sigma_up."""
    for i in range(len(sigmas) - 1):
        sigma = float(sigmas[i])
        x, denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, float(sigmas[i + 1]), eta)
        d = (x - denoised) / sigma
        if sigma_down == 0:
            x = x + d * (sigma_down - sigma)
            continue
        sigma_mid = midpoint(sigma, sigma_down)
        x_2 = x + d * (sigma_mid - sigma)
        x_2, denoised_2 = yield x_2, sigma_mid
        x = x + (x_2 - denoised_2) / sigma_mid * (sigma_down - sigma)
        x = x + draw(noise, x) * sigma_up
    return x


class DPM2Sampler(LoopSampler):
    """DPM2: two model calls per step, one on the last; one step more is laid out and its
    next-to-last sigma dropped, as A1111 and ComfyUI run it."""

    takes_churn = True
    discards_penultimate = True
    loop = staticmethod(dpm_2)


class DPM2AncestralSampler(LoopSampler):
    """DPM2 a: DPM2 with ancestral noise, on DPM2's sigmas."""

    eta_default = 1.0
    discards_penultimate = True
    loop = staticmethod(dpm_2_ancestral)
