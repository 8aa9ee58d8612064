"""UniPC: unified predictor-corrector multistep sampling (diffusers UniPCMultistepScheduler
with its defaults: ``solver_order=2``, ``solver_type="bh2"``, ``predict_x0=True``,
``lower_order_final=True``, corrector on every step)."""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn
from .solver_base import SolverSampler

SOLVER_ORDER = 2


def corrector_weights(rks: list[float], hh: float) -> np.ndarray:
    """The bh2 corrector's rho weights for the log-SNR ratios ``rks`` (the last one is 1)."""
    order = len(rks)
    if order == 1:
        return np.array([0.5])
    b_h = math.expm1(hh)
    h_phi_k = math.expm1(hh) / hh - 1
    factorial = 1
    rhs = []
    for i in range(1, order + 1):
        rhs.append(h_phi_k * factorial / b_h)
        factorial *= i + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    powers = np.array([[rk ** (i - 1) for rk in rks] for i in range(1, order + 1)])
    return np.linalg.solve(powers, np.array(rhs))


class UniPCSampler(SolverSampler):
    """Correct the last prediction with the new model output (UniC), then predict (UniP)."""

    discards_penultimate = None  # A1111's UniPC walks timesteps, not k-diffusion sigmas

    history = SOLVER_ORDER

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
        order = min(SOLVER_ORDER, len(self.timesteps) - index, len(self._outputs))
        self._last_sample, self._last_order = sample, order
        return self._predict(index, sample, order).astype(sample.dtype, copy=False)

    def _lambda_ratio(self, index: int, base: int, h: float) -> float:
        return float(self.lambda_t[index] - self.lambda_t[base]) / h

    def _predict(self, index: int, sample: np.ndarray, order: int) -> np.ndarray:
        """UniP-bh2: a DPM-Solver++ step plus a weighted difference of past outputs."""
        alpha_t, sigma_t = float(self.alpha_t[index + 1]), float(self.sigma_t[index + 1])
        h = float(self.lambda_t[index + 1] - self.lambda_t[index])
        h_phi_1 = math.expm1(-h)
        m0 = self._outputs[0]
        prev = (sigma_t / float(self.sigma_t[index])) * sample - (alpha_t * h_phi_1) * m0
        if order == 2:
            rk = self._lambda_ratio(index - 1, index, h)
            # bh2 second order: B(h) = expm1(-h) and a fixed rho of 1/2.
            prev = prev - (alpha_t * h_phi_1 * 0.5 / rk) * (self._outputs[1] - m0)
        return prev

    def _correct(self, x0: np.ndarray, index: int, sample: np.ndarray) -> np.ndarray:
        """UniC-bh2: redo the last step with the output the model gave at its end."""
        assert self._last_sample is not None
        alpha_t, sigma_t = float(self.alpha_t[index]), float(self.sigma_t[index])
        h = float(self.lambda_t[index] - self.lambda_t[index - 1])
        h_phi_1 = math.expm1(-h)
        m0 = self._outputs[0]
        rks = [self._lambda_ratio(index - 1 - k, index - 1, h) for k in range(1, self._last_order)]
        rhos = corrector_weights([*rks, 1.0], -h)
        correction = float(rhos[-1]) * (x0 - m0)
        for k, rk in enumerate(rks, start=1):
            correction = correction + (float(rhos[k - 1]) / rk) * (self._outputs[k] - m0)
        corrected = (sigma_t / float(self.sigma_t[index - 1])) * self._last_sample - (
            alpha_t * h_phi_1
        ) * (m0 + correction)
        return corrected.astype(sample.dtype, copy=False)
