"""DPM++ 2S a: ancestral single-step DPM-Solver++(2S)
(k-diffusion ``sample_dpmpp_2s_ancestral``)."""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler, ancestral_step


def dpmpp_2s_ancestral(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """A DPM-Solver++ midpoint step in log-sigma down to sigma_down, then ancestral noise."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        x, denoised = yield x, sigma
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        if sigma_down == 0:
            x = x + (x - denoised) / sigma * (sigma_down - sigma)
        else:
            h = math.log(sigma) - math.log(sigma_down)
            sigma_s = sigma * math.exp(-h / 2)
            x_2 = (sigma_s / sigma) * x - math.expm1(-h / 2) * denoised
            x_2, denoised_2 = yield x_2, sigma_s
            x = (sigma_down / sigma) * x - math.expm1(-h) * denoised_2
        if sigma_next > 0:
            x = x + draw(noise, x) * sigma_up
    return x


class DPMPP2SAncestralSampler(LoopSampler):
    """DPM++ 2S a: two model calls per step, one on the last."""

    eta_default = 1.0

    loop = staticmethod(dpmpp_2s_ancestral)
