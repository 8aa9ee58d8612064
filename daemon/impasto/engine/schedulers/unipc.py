"""UniPC: unified predictor-corrector multistep sampling (diffusers UniPCMultistepScheduler
with ``predict_x0=True``, ``lower_order_final=True`` and the corrector on every step).

Its order (``solver_order``: 2 by default, 1 to 3 here, as ``LIMITS`` says) and its variant
(``solver_type``: ``bh2`` by default, or ``bh1``) are a run's settings
(``SchedulerConfig.unipc_order`` and ``unipc_variant``: A1111's "UniPC order" and "UniPC
variant" options)."""

from __future__ import annotations

import math

import numpy as np

from impasto.wire import LIMITS

from .base import NoiseFn, SchedulerConfig
from .solver_base import SolverSampler

DEFAULT_ORDER, DEFAULT_VARIANT = 2, "bh2"


def b_of(hh: float, variant: str) -> float:
    """The variant's B(h) for ``hh`` (= -h, log-SNR step, for x0 prediction): bh1 takes h
    itself, bh2 expm1(h)."""
    return hh if variant == "bh1" else math.expm1(hh)


def weight_system(rks: list[float], hh: float, variant: str) -> tuple[np.ndarray, np.ndarray]:
    """UniPC's linear system for the log-SNR ratios ``rks`` (the last one 1): the powers
    R[i][k] = rks[k] ** i and b[i] = h phi_(i+1)(h) i! / B(h)."""
    order = len(rks)
    b_h = b_of(hh, variant)
    h_phi_k = math.expm1(hh) / hh - 1
    factorial = 1
    rhs = []
    for i in range(1, order + 1):
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    powers = np.array([[rk ** (i - 1) for rk in rks] for i in range(1, order + 1)])
    return powers, np.array(rhs)


def corrector_weights(rks: list[float], hh: float, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    """The corrector's rho weights (first order: 1/2, as diffusers simplifies it)."""
    if len(rks) == 1:
        return np.array([0.5])
    return np.linalg.solve(*weight_system(rks, hh, variant))


def predictor_weights(rks: list[float], hh: float, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    """The predictor's rho weights for the past outputs (second order: 1/2, as diffusers
    simplifies it); ``rks`` ends with the 1 of the step itself, which it leaves out."""
    if len(rks) == 2:
        return np.array([0.5])
    powers, rhs = weight_system(rks, hh, variant)
    return np.linalg.solve(powers[:-1, :-1], rhs[:-1])


class UniPCSampler(SolverSampler):
    """Correct the last prediction with the new model output (UniC), then predict (UniP)."""

    discards_penultimate = None  # A1111's UniPC walks timesteps, not k-diffusion sigmas

    def __init__(
        self, config: SchedulerConfig, schedule: str = "default", eta: float | None = None
    ) -> None:
        """The run's order and variant come from ``config`` (its defaults: 2, bh2)."""
        self.solver_order = config.unipc_order or DEFAULT_ORDER
        self.variant = config.unipc_variant or DEFAULT_VARIANT
        orders, variants = LIMITS["unipc_order"], LIMITS["unipc_variant"].choices or []
        low, high = orders.minimum or 1, orders.maximum or 1
        if not low <= self.solver_order <= high or self.variant not in variants:
            raise ValueError(
                f"UniPC takes orders {low:g} to {high:g} and variants {', '.join(variants)}, "
                f"not {self.solver_order} and {self.variant!r}"
            )
        self.history = self.solver_order
        super().__init__(config, schedule, eta)

    def _reset(self) -> None:
        super()._reset()
        self._last_sample: np.ndarray | None = None
        self._last_order = 1

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One corrector-predictor update from timesteps[index] to the next sigma."""
        x0 = self.denoised(model_output, index, sample)
        if index == self._last_index + 1 and self._last_sample is not None:
            sample = self._correct(x0, index, sample)
        else:
            self._last_sample = None
        self._remember(index, x0)
        order = min(self.solver_order, len(self.timesteps) - index, len(self._outputs))
        self._last_sample, self._last_order = sample, order
        return self._predict(index, sample, order).astype(sample.dtype, copy=False)

    def _lambda_ratio(self, index: int, base: int, h: float) -> float:
        return float(self.lambda_t[index] - self.lambda_t[base]) / h

    def _weighted(self, rhos: np.ndarray, rks: list[float]) -> np.ndarray | float:
        """sum_k rho_k (m_k - m0) / r_k over the past outputs (0 without any)."""
        m0 = self._outputs[0]
        total: np.ndarray | float = 0.0
        for k, rk in enumerate(rks, start=1):
            total = total + (float(rhos[k - 1]) / rk) * (self._outputs[k] - m0)
        return total

    def _predict(self, index: int, sample: np.ndarray, order: int) -> np.ndarray:
        """UniP: a DPM-Solver++ step plus B(h) times a weighted difference of past outputs."""
        alpha_t, sigma_t = float(self.alpha_t[index + 1]), float(self.sigma_t[index + 1])
        h = float(self.lambda_t[index + 1] - self.lambda_t[index])
        m0 = self._outputs[0]
        prev = (sigma_t / float(self.sigma_t[index])) * sample - (alpha_t * math.expm1(-h)) * m0
        if order > 1:
            rks = [self._lambda_ratio(index - k, index, h) for k in range(1, order)]
            rhos = predictor_weights([*rks, 1.0], -h, self.variant)
            prev = prev - (alpha_t * b_of(-h, self.variant)) * self._weighted(rhos, rks)
        return prev

    def _correct(self, x0: np.ndarray, index: int, sample: np.ndarray) -> np.ndarray:
        """UniC: redo the last step with the output the model gave at its end."""
        assert self._last_sample is not None
        alpha_t, sigma_t = float(self.alpha_t[index]), float(self.sigma_t[index])
        h = float(self.lambda_t[index] - self.lambda_t[index - 1])
        m0 = self._outputs[0]
        rks = [self._lambda_ratio(index - 1 - k, index - 1, h) for k in range(1, self._last_order)]
        rhos = corrector_weights([*rks, 1.0], -h, self.variant)
        correction = self._weighted(rhos, rks) + float(rhos[-1]) * (x0 - m0)
        corrected = (
            (sigma_t / float(self.sigma_t[index - 1])) * self._last_sample
            - (alpha_t * math.expm1(-h)) * m0
            - (alpha_t * b_of(-h, self.variant)) * correction
        )
        return corrected.astype(sample.dtype, copy=False)
