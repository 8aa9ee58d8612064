"""The sigma schedules of AUTOMATIC1111 and ComfyUI, over a model's whole training range.

Each returns ``steps + 1`` sigmas from high to low, ending at 0 (KL Optimal ends at the
smallest training sigma, as in A1111). ``train`` is the model's training sigmas, ascending in
t. Karras and exponential are not here: they follow diffusers (``sigmas.reshape_sigmas``).

A run may move the ends of the schedules that span a range of sigmas and the curvature of
those with a rho (A1111's "sigma min", "sigma max" and "rho" options; ComfyUI's Karras,
exponential and polyexponential scheduler nodes): ``SIGMA_RANGE_SCHEDULES`` and
``SCHEDULE_RHO`` name them, and ``bounds_for`` gives a schedule what it takes of a run's.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

AYS_SD15 = (14.615, 6.475, 3.861, 2.697, 1.886, 1.396, 0.963, 0.652, 0.399, 0.152, 0.029)
"""NVIDIA's Align Your Steps sigmas for SD 1.5 (10 steps)."""
AYS_SDXL = (14.615, 6.315, 3.771, 2.181, 1.342, 0.862, 0.555, 0.380, 0.234, 0.113, 0.029)
"""NVIDIA's Align Your Steps sigmas for SDXL (10 steps)."""
BETA_ALPHA = BETA_BETA = 0.6

SIGMA_RANGE_SCHEDULES = (
    "karras",
    "exponential",
    "polyexponential",
    "kl_optimal",
    "sgm_uniform",
    "normal",
)
"""The schedules that run from a top sigma down to a lowest one, which a run may move
(A1111 passes its sigma min and max to these; the others read the training sigmas alone)."""
SCHEDULE_RHO = {"karras": 7.0, "polyexponential": 1.0}
"""The schedules with a rho, and its default (A1111's ``default_rho``)."""


def bounds_for(
    schedule: str, sigma_min: float | None, sigma_max: float | None, rho: float | None
) -> dict[str, float]:
    """What ``schedule`` takes of a run's bounds: ``sigma_min``/``sigma_max`` where it spans a
    range, ``rho`` where it has one; unset ones (None) are left out."""
    given = {"sigma_min": sigma_min, "sigma_max": sigma_max}
    taken = given if schedule in SIGMA_RANGE_SCHEDULES else {}
    if schedule in SCHEDULE_RHO:
        taken = {**taken, "rho": rho}
    return {name: value for name, value in taken.items() if value is not None}


def sigma_to_t(sigmas: np.ndarray, log_sigmas: np.ndarray) -> np.ndarray:
    """Fractional training timesteps of ``sigmas``, interpolating in log-sigma (clamped to the
    training range, as k-diffusion's ``sigma_to_t``)."""
    log_sigma = np.log(np.maximum(sigmas, 1e-10))
    dists = log_sigma - log_sigmas[:, np.newaxis]
    low = np.cumsum(dists >= 0, axis=0).argmax(axis=0).clip(max=log_sigmas.shape[0] - 2)
    high = low + 1
    w = np.clip((log_sigmas[low] - log_sigma) / (log_sigmas[low] - log_sigmas[high]), 0, 1)
    return (1 - w) * low + w * high


def _t_span(
    train: np.ndarray, sigma_min: float | None, sigma_max: float | None
) -> tuple[float, float]:
    """The timesteps of a range's top and bottom: the training range's unless moved."""
    log_train = np.log(train)

    def t_of(sigma: float) -> float:
        return float(sigma_to_t(np.array([sigma]), log_train)[0])

    top = len(train) - 1 if sigma_max is None else t_of(sigma_max)
    bottom = 0.0 if sigma_min is None else t_of(sigma_min)
    return top, bottom


def t_to_sigma(t: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Sigma at fractional training timesteps, interpolating in log-sigma (k-diffusion)."""
    t = np.clip(t, 0, len(train) - 1)
    low, high = np.floor(t).astype(int), np.ceil(t).astype(int)
    w = t - low
    log_train = np.log(train)
    return np.exp((1 - w) * log_train[low] + w * log_train[high])


def uniform(train: np.ndarray, steps: int) -> np.ndarray:
    """k-diffusion's ``get_sigmas``: timesteps evenly spaced from the last to the first."""
    return np.append(t_to_sigma(np.linspace(len(train) - 1, 0, steps), train), 0.0)


def sgm_uniform(
    train: np.ndarray, steps: int, sigma_min: float | None = None, sigma_max: float | None = None
) -> np.ndarray:
    """Uniform over ``steps + 1`` timesteps from the top sigma's to the lowest's (the training
    range's: t = 0), the last dropped for sigma 0."""
    top, bottom = _t_span(train, sigma_min, sigma_max)
    return np.append(t_to_sigma(np.linspace(top, bottom, steps + 1)[:-1], train), 0.0)


def polyexponential(
    train: np.ndarray,
    steps: int,
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = SCHEDULE_RHO["polyexponential"],
) -> np.ndarray:
    """k-diffusion's ``get_sigmas_polyexponential`` (A1111's rho 1: even in log-sigma)."""
    ramp = np.linspace(1, 0, steps) ** rho
    lo = math.log(train[0] if sigma_min is None else sigma_min)
    hi = math.log(train[-1] if sigma_max is None else sigma_max)
    return np.append(np.exp(ramp * (hi - lo) + lo), 0.0)


def kl_optimal(
    train: np.ndarray, steps: int, sigma_min: float | None = None, sigma_max: float | None = None
) -> np.ndarray:
    """Even steps in arctan(sigma) (Sabour et al. 2024), ending at the lowest sigma."""
    lo = train[0] if sigma_min is None else sigma_min
    hi = train[-1] if sigma_max is None else sigma_max
    fraction = np.arange(steps + 1) / steps
    return np.tan(fraction * math.atan(lo) + (1 - fraction) * math.atan(hi))


def loglinear_interp(sigmas: tuple[float, ...], count: int) -> np.ndarray:
    """``count`` sigmas interpolated log-linearly along a decreasing table."""
    xs = np.linspace(0, 1, len(sigmas))
    ys = np.log(np.array(sigmas[::-1]))
    return np.exp(np.interp(np.linspace(0, 1, count), xs, ys))[::-1].copy()


def align_your_steps(table: tuple[float, ...]) -> Callable[[np.ndarray, int], np.ndarray]:
    """A1111's Align Your Steps: the table as is for 11 steps, else log-linearly resampled."""

    def schedule(train: np.ndarray, steps: int) -> np.ndarray:
        sigmas = np.array(table) if steps == len(table) else loglinear_interp(table, steps)
        return np.append(sigmas, 0.0)

    return schedule


def simple(train: np.ndarray, steps: int) -> np.ndarray:
    """ComfyUI's ``simple``: training sigmas taken every len/steps from the top."""
    stride = len(train) / steps
    return np.array([*(train[-(1 + int(x * stride))] for x in range(steps)), 0.0])


def normal(
    train: np.ndarray, steps: int, sigma_min: float | None = None, sigma_max: float | None = None
) -> np.ndarray:
    """ComfyUI's and A1111's ``normal``: evenly spaced in t from the top sigma's timestep to
    the lowest's (the training range's: t = 0)."""
    top, bottom = _t_span(train, sigma_min, sigma_max)
    return np.append(t_to_sigma(np.linspace(top, bottom, steps), train), 0.0)


def ddim_uniform(train: np.ndarray, steps: int) -> np.ndarray:
    """ComfyUI's ``ddim_uniform`` (A1111 "DDIM"): every len // steps-th sigma from t = 1."""
    stride = max(len(train) // steps, 1)
    return np.append(train[1::stride][::-1], 0.0)


def beta(train: np.ndarray, steps: int) -> np.ndarray:
    """ComfyUI's ``beta`` (Lee et al. 2024): timesteps at Beta(0.6, 0.6) quantiles, deduplicated."""
    top = len(train) - 1
    quantiles = 1 - np.linspace(0, 1, steps, endpoint=False)
    ts = np.rint([beta_ppf(float(q), BETA_ALPHA, BETA_BETA) * top for q in quantiles])
    kept = [int(t) for i, t in enumerate(ts) if i == 0 or t != ts[i - 1]]
    return np.append(train[kept], 0.0)


def beta_ppf(q: float, a: float, b: float) -> float:
    """The Beta(a, b) quantile of ``q`` by bisection on the regularized incomplete beta."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if regularized_beta(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), by its continued fraction (Numerical Recipes ``betacf``)."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - regularized_beta(1.0 - x, b, a)
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f / a


NAMED_SCHEDULES: dict[str, Callable[..., np.ndarray]] = {
    "uniform": uniform,
    "polyexponential": polyexponential,
    "sgm_uniform": sgm_uniform,
    "kl_optimal": kl_optimal,
    "align_your_steps": align_your_steps(AYS_SD15),
    "align_your_steps_sdxl": align_your_steps(AYS_SDXL),
    "simple": simple,
    "normal": normal,
    "ddim_uniform": ddim_uniform,
    "beta": beta,
}
"""Schedule id -> sigmas of a model's training sigmas for a number of steps (and, as keywords,
what it takes of a run's bounds: ``bounds_for``)."""
