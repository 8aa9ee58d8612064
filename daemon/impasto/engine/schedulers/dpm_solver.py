"""DPM fast and DPM adaptive: DPM-Solver (Lu et al. 2022, arXiv 2206.00927) as k-diffusion's
``DPMSolver`` writes it and AUTOMATIC1111 runs it: from the schedule's first sigma to its last
non-zero one, with ``eta`` 1 unless asked (A1111's default "Eta for ancestral samplers").

DPM fast makes one model call per step on a grid even in log-sigma; DPM adaptive chooses its
step sizes by an error estimate, so its number of model calls is known only at the end. Both
end at the smallest sigma, not at 0: the last latents keep that little noise, as in A1111.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import numpy as np

from .base import NoiseFn, draw
from .loop import Loop, LoopSampler, ancestral_step

EpsCall = Generator[tuple[np.ndarray, float], tuple[np.ndarray, np.ndarray], np.ndarray]


def sigma_of(t: float) -> float:
    """DPM-Solver's time t is -log(sigma)."""
    return math.exp(-t)


def eps_at(x: np.ndarray, t: float) -> EpsCall:
    """One model call at time ``t``, as the noise prediction DPM-Solver works with."""
    sigma = sigma_of(t)
    x, denoised = yield x, sigma
    return (x - denoised) / sigma


def dpm_solver_23(x: np.ndarray, t: float, t_next: float) -> EpsCall:
    """DPM-Solver-2 (r1 = 1/3) and -3 (r1 = 1/3, r2 = 2/3) from t to t_next, sharing calls."""
    h = t_next - t
    eps = yield from eps_at(x, t)
    base = x - sigma_of(t_next) * math.expm1(h) * eps
    r1, r2 = 1 / 3, 2 / 3
    s1, s2 = t + r1 * h, t + r2 * h
    eps_r1 = yield from eps_at(x - sigma_of(s1) * math.expm1(r1 * h) * eps, s1)
    second = base - sigma_of(t_next) / (2 * r1) * math.expm1(h) * (eps_r1 - eps)
    u2 = (
        x
        - sigma_of(s2) * math.expm1(r2 * h) * eps
        - sigma_of(s2) * (r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * (eps_r1 - eps)
    )
    eps_r2 = yield from eps_at(u2, s2)
    third = base - sigma_of(t_next) / r2 * (math.expm1(h) / h - 1) * (eps_r2 - eps)
    return np.stack([second, third])


def dpm_solver_step(x: np.ndarray, t: float, t_next: float, order: int) -> EpsCall:
    """One DPM-Solver-1, -2 (r1 = 1/2) or -3 step from t to t_next."""
    if order == 3:
        both = yield from dpm_solver_23(x, t, t_next)
        return both[1]
    h = t_next - t
    eps = yield from eps_at(x, t)
    base = x - sigma_of(t_next) * math.expm1(h) * eps
    if order == 1:
        return base
    s1 = t + h / 2
    eps_r1 = yield from eps_at(x - sigma_of(s1) * math.expm1(h / 2) * eps, s1)
    return base - sigma_of(t_next) * math.expm1(h) * (eps_r1 - eps)


def ancestral_target(t: float, t_next: float, t_end: float, eta: float) -> tuple[float, float]:
    """Where the deterministic part of a step from t to t_next ends, and the noise to add."""
    sigma_down, _ = ancestral_step(sigma_of(t), sigma_of(t_next), eta)
    t_down = min(t_end, -math.log(sigma_down))
    return t_down, (sigma_of(t_next) ** 2 - sigma_of(t_down) ** 2) ** 0.5


def dpm_fast(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """As many model calls as steps, mostly third-order steps evenly spaced in log-sigma."""
    calls = len(sigmas) - 1
    t_start, t_end = -math.log(float(sigmas[0])), -math.log(float(sigmas[-2]))
    m = calls // 3 + 1
    ts = np.linspace(t_start, t_end, m + 1)
    orders = [3] * (m - 2) + [2, 1] if calls % 3 == 0 else [3] * (m - 1) + [calls % 3]
    for i, order in enumerate(orders):
        t, t_next = float(ts[i]), float(ts[i + 1])
        t_down, sigma_up = ancestral_target(t, t_next, t_end, eta)
        x = yield from dpm_solver_step(x, t, t_down, order)
        x = x + sigma_up * draw(noise, x)
    return x


class StepSizeController:
    """k-diffusion's PID step-size control with its defaults: integral only, safety 0.81."""

    def __init__(self, h: float, order: float, accept_safety: float = 0.81) -> None:
        self.h = h
        self.exponent = 1 / order
        self.accept_safety = accept_safety

    def propose_step(self, error: float) -> bool:
        """Scale ``h`` by the error; whether the step that made it is accepted."""
        factor = (1 / (error + 1e-8)) ** self.exponent
        factor = 1 + math.atan(factor - 1)
        self.h *= factor
        return factor >= self.accept_safety


def dpm_adaptive(x: np.ndarray, sigmas: np.ndarray, noise: NoiseFn, eta: float = 1.0) -> Loop:
    """Third-order steps, each checked against a second-order one, sized to the error."""
    t, t_end = -math.log(float(sigmas[0])), -math.log(float(sigmas[-2]))
    x_prev = x
    rtol, atol = 0.05, 0.0078
    control = StepSizeController(0.05, 1.5 if eta else 3)  # k-diffusion's orders
    while t < t_end - 1e-5:
        t_next = min(t_end, t + control.h)
        t_down, sigma_up = ancestral_target(t, t_next, t_end, eta)
        low, high = yield from dpm_solver_23(x, t, t_down)
        delta = np.maximum(atol, rtol * np.maximum(np.abs(low), np.abs(x_prev)))
        error = float(np.linalg.norm((low - high) / delta)) / low.size**0.5
        if control.propose_step(error):
            x_prev = low
            x = high + sigma_up * draw(noise, x)
            t = t_next
    return x


class DPMFastSampler(LoopSampler):
    """DPM fast: one model call per step over the schedule's non-zero range."""

    eta_default = 1.0
    loop = staticmethod(dpm_fast)


class DPMAdaptiveSampler(LoopSampler):
    """DPM adaptive: ``timesteps`` grows by each call the error control decides on."""

    adaptive = True
    eta_default = 1.0
    loop = staticmethod(dpm_adaptive)
