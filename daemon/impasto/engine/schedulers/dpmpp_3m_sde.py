"""DPM++ 3M SDE: third-order multistep stochastic DPM-Solver++ (k-diffusion
``sample_dpmpp_3m_sde``, ``eta`` 1 unless asked); plain Gaussian increments as in ``dpmpp_sde``."""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler


def dpmpp_3m_sde(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """Exponential-integrator steps with up to two past predictions, plus SDE noise."""
    denoised_1 = denoised_2 = None
    h_1 = h_2 = None
    h = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        x, denoised = yield x, sigma
        if sigma_next == 0:
            x = denoised
        else:
            h = math.log(sigma) - math.log(sigma_next)
            h_eta = h * (eta + 1)
            x = math.exp(-h_eta) * x - math.expm1(-h_eta) * denoised
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            if h_2 is not None and denoised_2 is not None and denoised_1 is not None:
                assert h_1 is not None
                r0, r1 = h_1 / h, h_2 / h
                d1_0 = (denoised - denoised_1) / r0
                d1_1 = (denoised_1 - denoised_2) / r1
                d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
                x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
            elif h_1 is not None and denoised_1 is not None:
                x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
            x = x + draw(noise, x) * sigma_next * math.sqrt(-math.expm1(-2 * h * eta))
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


class DPMPP3MSDESampler(LoopSampler):
    """DPM++ 3M SDE: one model call per step."""

    eta_default = 1.0

    loop = staticmethod(dpmpp_3m_sde)
