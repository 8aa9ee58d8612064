"""Restart: Heun steps that jump back up in noise a few times (AUTOMATIC1111's
``restart_sampler`` in ``modules/sd_samplers_extra.py``, with its automatic restart list;
Xu et al. 2023, "Restart Sampling for Improving Generative Processes")."""

from __future__ import annotations

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler
from .sigmas import karras_sigmas

RESTART_MIN_SIGMA = 0.1
RESTART_MAX_SIGMA = 2.0


def restart_path(sigmas: np.ndarray) -> np.ndarray:
    """The sigmas Restart walks: from 20 steps on, fewer Karras steps plus restart segments.

    A rise in the path is a restart: noise brings the latents back up to the higher sigma.
    """
    steps = len(sigmas) - 1
    if steps < 20:
        return sigmas
    restart_steps, restart_times = (steps // 4, 2) if steps >= 36 else (9, 1)
    base_steps = steps - restart_steps * restart_times
    base = np.append(karras_sigmas(float(sigmas[-2]), float(sigmas[0]), base_steps), 0.0)
    low = int(np.argmin(np.abs(base - RESTART_MIN_SIGMA)))
    high = int(np.argmin(np.abs(base - RESTART_MAX_SIGMA)))
    if high >= low:
        return base
    segment = karras_sigmas(float(base[low]), float(base[high]), restart_steps + 1)
    return np.concatenate([base[: low + 1], *[segment] * restart_times, base[low + 1 :]])


def restart(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn) -> Loop:
    """Heun steps down the path; where it rises, add the noise that makes up the difference."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        if sigma_next > sigma:
            x = x + draw(noise, x) * (sigma_next**2 - sigma**2) ** 0.5
            continue
        x, denoised = yield x, sigma
        d = (x - denoised) / sigma
        dt = sigma_next - sigma
        if sigma_next == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        x_2, denoised_2 = yield x_2, sigma_next
        x = x + (d + (x_2 - denoised_2) / sigma_next) / 2 * dt
    return x


class RestartSampler(LoopSampler):
    """Restart: Heun along ``restart_path``."""

    loop = staticmethod(restart)

    def path(self, sigmas: np.ndarray) -> np.ndarray:
        """The schedule's sigmas with Restart's segments inserted."""
        return restart_path(sigmas)
