"""DPM++ SDE: stochastic DPM-Solver++ with a midpoint stage (k-diffusion ``sample_dpmpp_sde``,
``r=1/2``, ``eta=1``).

k-diffusion draws its noise from a Brownian tree; here each increment is a fresh standard
normal draw from the image's own generator, which has the same distribution (the reference
tests feed both the same increments).
"""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler, ancestral_step


def dpmpp_sde(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """Two ancestral DPM-Solver++ stages per step, through the log-sigma midpoint."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        x, denoised = yield x, sigma
        if sigma_next == 0:
            x = x + (x - denoised) / sigma * (sigma_next - sigma)
            continue
        sigma_s = math.sqrt(sigma * sigma_next)
        sd, su = ancestral_step(sigma, sigma_s, eta)
        x_2 = (sd / sigma) * x - math.expm1(math.log(sd) - math.log(sigma)) * denoised
        x_2 = x_2 + draw(noise, x) * su
        x_2, denoised_2 = yield x_2, sigma_s
        sd, su = ancestral_step(sigma, sigma_next, eta)
        # With r = 1/2 the second stage uses the midpoint prediction alone.
        x = (sd / sigma) * x - math.expm1(math.log(sd) - math.log(sigma)) * denoised_2
        x = x + draw(noise, x) * su
    return x


class DPMPPSDESampler(LoopSampler):
    """DPM++ SDE: two model calls per step, one on the last."""

    eta_default = 1.0

    loop = staticmethod(dpmpp_sde)
