"""LMS: linear multistep in sigma, up to fourth order (diffusers LMSDiscreteScheduler)."""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.polynomial import polynomial

from .base import NoiseFn
from .k_base import SigmaSampler
from .sigmas import k_denoised

MAX_ORDER = 4


def lms_coefficients(sigmas: np.ndarray, max_order: int = MAX_ORDER) -> np.ndarray:
    """Adams-Bashforth weights ``[i, order - 1, j]`` of the j-th newest slope at step i.

    Each weight integrates a Lagrange basis polynomial over [sigma_i, sigma_{i+1}];
    the integral is exact, where diffusers approximates it with scipy's quad.
    """
    steps = len(sigmas) - 1
    table = np.zeros((steps, max_order, max_order))
    for i in range(steps):
        for order in range(1, min(max_order, i + 1) + 1):
            nodes = sigmas[i - np.arange(order)]
            for j in range(order):
                others = np.delete(nodes, j)
                basis = polynomial.polyfromroots(others) / np.prod(nodes[j] - others)
                antiderivative = polynomial.polyint(basis)
                table[i, order - 1, j] = polynomial.polyval(
                    sigmas[i + 1], antiderivative
                ) - polynomial.polyval(sigmas[i], antiderivative)
    return table


class LMSSampler(SigmaSampler):
    """Combine the last (up to) four slopes with precomputed Adams-Bashforth weights."""

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the sigmas and their multistep weights."""
        super().set_timesteps(num_inference_steps)
        self.coefficients = lms_coefficients(self.sigmas)

    def _reset(self) -> None:
        self._derivatives: deque[np.ndarray] = deque(maxlen=MAX_ORDER)
        self._last_index = -2

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One multistep update; the order grows with the history this run has built."""
        if index != self._last_index + 1:
            self._derivatives.clear()
        self._last_index = index
        sigma = float(self.sigmas[index])
        denoised = k_denoised(model_output, sample, sigma, self.config.prediction_type)
        self._derivatives.appendleft((sample - denoised) / sigma)
        weights = self.coefficients[index, len(self._derivatives) - 1]
        prev = sample.copy()
        for weight, derivative in zip(weights, self._derivatives, strict=False):
            prev += float(weight) * derivative
        return prev
