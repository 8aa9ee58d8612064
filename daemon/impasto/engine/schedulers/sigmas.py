"""Noise schedules shared by the samplers: betas, alphas, sigmas and timestep spacing.

Training-schedule arrays are built in float32 like diffusers builds them, so a model
sees the same timesteps and noise levels it would see under diffusers.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from impasto.wire import SCHEDULE_NAMES

from .base import SchedulerConfig
from .schedules import NAMED_SCHEDULES, SCHEDULE_RHO, bounds_for, sigma_to_t

SCHEDULES = SCHEDULE_NAMES
"""Sigma-schedule options of the sigma-based samplers: the request schema's list."""

KARRAS_RHO = SCHEDULE_RHO["karras"]

# A zero terminal SNR makes sigma infinite; diffusers' sigma samplers clamp it to this.
ZERO_SNR_ALPHA_CUMPROD = 2.0**-24


def betas(config: SchedulerConfig) -> np.ndarray:
    """The training betas (float32) of ``config.beta_schedule``."""
    n = config.num_train_timesteps
    if config.beta_schedule == "linear":
        out = np.linspace(config.beta_start, config.beta_end, n).astype(np.float32)
    elif config.beta_schedule == "scaled_linear":
        root = np.linspace(config.beta_start**0.5, config.beta_end**0.5, n).astype(np.float32)
        out = root**2
    elif config.beta_schedule == "squaredcos_cap_v2":
        out = _cosine_betas(n)
    else:
        raise ValueError(
            f"unknown beta_schedule {config.beta_schedule!r}; "
            "use linear, scaled_linear or squaredcos_cap_v2"
        )
    if config.rescale_betas_zero_snr:
        out = rescale_zero_terminal_snr(out)
    return out


def _cosine_betas(n: int, max_beta: float = 0.999) -> np.ndarray:
    """Betas of the "squaredcos_cap_v2" (improved DDPM cosine) schedule."""
    steps = np.arange(n + 1, dtype=np.float64) / n
    alpha_bar = np.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
    return np.minimum(1 - alpha_bar[1:] / alpha_bar[:-1], max_beta).astype(np.float32)


def rescale_zero_terminal_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas so the last timestep has zero SNR (arXiv 2305.08891, Algorithm 1)."""
    alphas_bar_sqrt = np.sqrt(np.cumprod(1.0 - betas, dtype=betas.dtype))
    first, last = alphas_bar_sqrt[0], alphas_bar_sqrt[-1]
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt**2
    alphas = np.concatenate([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return (1 - alphas).astype(betas.dtype)


def alphas_cumprod(config: SchedulerConfig, clamp_zero_snr: bool = True) -> np.ndarray:
    """Cumulative alpha products (float32) of the training schedule.

    With ``clamp_zero_snr`` a zero terminal value is raised to 2**-24 so that sigma stays
    finite, as the sigma-based diffusers samplers do.
    """
    out = np.cumprod(1.0 - betas(config), dtype=np.float32)
    if config.rescale_betas_zero_snr and clamp_zero_snr:
        out[-1] = ZERO_SNR_ALPHA_CUMPROD
    return out


def train_sigmas(alphas_cumprod: np.ndarray) -> np.ndarray:
    """Sigma of every training timestep, ascending in t (float32)."""
    return ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5


def spaced_timesteps(
    config: SchedulerConfig, steps: int, solver: bool = False, integer: bool = False
) -> np.ndarray:
    """Descending timesteps of ``config.timestep_spacing`` as the diffusers samplers lay them out.

    ``solver`` selects the DPM-Solver/UniPC variant, which spaces ``steps + 1`` points and
    drops the last for ``linspace`` and ``leading``; ``integer`` rounds ``linspace`` (DDIM).
    """
    train = config.num_train_timesteps
    spacing = config.timestep_spacing
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if spacing == "linspace":
        if solver:
            return np.linspace(0, train - 1, steps + 1).round()[::-1][:-1].copy()
        if integer:
            return np.linspace(0, train - 1, steps).round()[::-1].copy()
        return np.linspace(0, train - 1, steps, dtype=np.float32)[::-1].astype(np.float64)
    if spacing == "leading":
        if solver:
            ratio = train // (steps + 1)
            ts = (np.arange(steps + 1) * ratio).round()[::-1][:-1]
        else:
            ts = (np.arange(steps) * (train // steps)).round()[::-1]
        return ts.astype(np.float64) + config.steps_offset
    if spacing == "trailing":
        return np.arange(train, 0, -train / steps).round() - 1.0
    raise ValueError(f"unknown timestep_spacing {spacing!r}; use leading, trailing or linspace")


def karras_sigmas(
    sigma_min: float, sigma_max: float, steps: int, rho: float = KARRAS_RHO
) -> np.ndarray:
    """The Karras et al. (2022) schedule from ``sigma_max`` down to ``sigma_min``."""
    ramp = np.linspace(0, 1, steps)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + ramp * (lo - hi)) ** rho


def exponential_sigmas(sigma_min: float, sigma_max: float, steps: int) -> np.ndarray:
    """Sigmas evenly spaced in log-sigma from ``sigma_max`` down to ``sigma_min``."""
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), steps))


def reshape_sigmas(
    schedule: str,
    sigmas: np.ndarray,
    log_train: np.ndarray,
    steps: int,
    config: SchedulerConfig | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Karras or exponential sigmas spanning ``sigmas`` (or the run's ``config.sigma_min`` and
    ``sigma_max`` where set), with their timesteps; None for default."""
    if schedule == "default":
        return None
    bounds = _run_bounds(schedule, config)
    lo = bounds.get("sigma_min", float(sigmas[-1]))
    hi = bounds.get("sigma_max", float(sigmas[0]))
    if schedule == "karras":
        out = karras_sigmas(lo, hi, steps, bounds.get("rho", KARRAS_RHO))
    elif schedule == "exponential":
        out = exponential_sigmas(lo, hi, steps)
    else:
        raise ValueError(f"unknown sigma schedule {schedule!r}; use one of {', '.join(SCHEDULES)}")
    return out, sigma_to_t(out, log_train)


def _run_bounds(schedule: str, config: SchedulerConfig | None) -> dict[str, float]:
    """What ``schedule`` takes of the run's bounds in ``config`` (none without one)."""
    if config is None:
        return {}
    return bounds_for(schedule, config.sigma_min, config.sigma_max, config.rho)


def without_penultimate(laid_out: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """A schedule laid out for one step more, less its last sigma before the end and that
    sigma's timestep (A1111's and ComfyUI's ``discard_next_to_last_sigma``:
    ``cat(sigmas[:-2], sigmas[-1:])``)."""
    timesteps, sigmas, *rest = laid_out
    return (np.delete(timesteps, -1), np.delete(sigmas, -2), *rest)


def _all_sigmas(config: SchedulerConfig) -> SchedulerConfig:
    return dataclasses.replace(config, discard_penultimate=False)


def k_schedule(
    config: SchedulerConfig, steps: int, schedule: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timesteps, sigmas (one longer, ending at 0) and training alphas of the Euler family."""
    if config.discard_penultimate:
        timesteps, sigmas, ac = without_penultimate(
            k_schedule(_all_sigmas(config), steps + 1, schedule)
        )
        return timesteps, sigmas, ac
    ac = alphas_cumprod(config)
    train = train_sigmas(ac)
    if schedule in NAMED_SCHEDULES:
        return (*named_schedule(schedule, train, steps, config), ac)
    timesteps = spaced_timesteps(config, steps)
    sigmas = np.interp(timesteps, np.arange(len(train)), train)
    reshaped = reshape_sigmas(schedule, sigmas, np.log(train), steps, config)
    if reshaped is not None:
        sigmas, timesteps = reshaped
    sigmas = np.append(sigmas, 0.0).astype(np.float32).astype(np.float64)
    return timesteps.astype(np.float32).astype(np.float64), sigmas, ac


def solver_schedule(
    config: SchedulerConfig, steps: int, schedule: str, round_cosine_karras: bool = True
) -> tuple[np.ndarray, ...]:
    """Timesteps, sigmas (one longer, ending at 0) and training alphas of DPM-Solver and UniPC.

    Karras and exponential sigmas span the whole training range here, and their timesteps
    are made integer (rounded for Karras, truncated for exponential) as diffusers does;
    DPM-Solver leaves Karras timesteps of the cosine schedule unrounded.
    """
    if config.discard_penultimate:
        plain = _all_sigmas(config)
        return without_penultimate(solver_schedule(plain, steps + 1, schedule, round_cosine_karras))
    ac = alphas_cumprod(config)
    train = train_sigmas(ac)
    if schedule in NAMED_SCHEDULES:
        return (*named_schedule(schedule, train, steps, config), ac)
    timesteps = spaced_timesteps(config, steps, solver=True)
    if schedule == "default":
        sigmas = np.interp(timesteps, np.arange(len(train)), train)
    else:
        reshaped = reshape_sigmas(schedule, train[::-1], np.log(train), steps, config)
        assert reshaped is not None
        sigmas, timesteps = reshaped
        cosine = config.beta_schedule == "squaredcos_cap_v2"
        if schedule == "karras" and (round_cosine_karras or not cosine):
            timesteps = timesteps.round()
        timesteps = np.trunc(timesteps)
    sigmas = np.append(sigmas, 0.0).astype(np.float32).astype(np.float64)
    return timesteps.astype(np.float64), sigmas, ac


def named_schedule(
    schedule: str, train: np.ndarray, steps: int, config: SchedulerConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Timesteps and sigmas of an A1111/ComfyUI schedule, with what it takes of the run's
    bounds in ``config``; timesteps are fractional."""
    bounds = _run_bounds(schedule, config)
    sigmas = NAMED_SCHEDULES[schedule](train.astype(np.float64), steps, **bounds)
    sigmas = sigmas.astype(np.float32).astype(np.float64)
    return sigma_to_t(sigmas[:-1], np.log(train)), sigmas


def sigma_to_alpha_sigma(sigmas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Variance-preserving (alpha_t, sigma_t) pairs of variance-exploding ``sigmas``."""
    alpha = 1 / np.sqrt(sigmas**2 + 1)
    return alpha, sigmas * alpha


def k_denoised(
    model_output: np.ndarray, sample: np.ndarray, sigma: float, prediction_type: str
) -> np.ndarray:
    """The predicted clean sample of a sigma-parametrised (k-diffusion) step."""
    if prediction_type == "epsilon":
        return sample - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + sample / (sigma**2 + 1)
    if prediction_type == "sample":
        return model_output
    raise ValueError(
        f"unknown prediction_type {prediction_type!r}; use epsilon, v_prediction or sample"
    )


def vp_denoised(
    model_output: np.ndarray, sample: np.ndarray, alpha: float, sigma: float, prediction_type: str
) -> np.ndarray:
    """The predicted clean sample of a variance-preserving step (alpha^2 + sigma^2 = 1)."""
    if prediction_type == "epsilon":
        return (sample - sigma * model_output) / alpha
    if prediction_type == "v_prediction":
        return alpha * sample - sigma * model_output
    if prediction_type == "sample":
        return model_output
    raise ValueError(
        f"unknown prediction_type {prediction_type!r}; use epsilon, v_prediction or sample"
    )
