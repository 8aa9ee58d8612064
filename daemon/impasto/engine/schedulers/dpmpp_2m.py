"""DPM++ 2M: second-order multistep DPM-Solver++ (diffusers DPMSolverMultistepScheduler,
``algorithm_type="dpmsolver++"``, ``solver_order=2``, midpoint, ``lower_order_final``)."""

from __future__ import annotations

import math

import numpy as np

from .base import NoiseFn
from .solver_base import SolverSampler


class DPMPP2MSampler(SolverSampler):
    """Multistep DPM-Solver++ in data prediction, order 2 after a first-order warm-up."""

    round_cosine_karras = False
    stochastic = False
    solver_type = "midpoint"  # of the SDE variant's second-order term; "heun" is the other

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One update from timesteps[index] to the next sigma."""
        self._remember(index, self.denoised(model_output, index, sample))
        fresh = noise(sample.shape).astype(sample.dtype, copy=False) if self.stochastic else None
        # First order into sigma 0 (diffusers' final_sigmas_type "zero", k-diffusion alike).
        final = float(self.sigmas[index + 1]) == 0.0
        alpha_t, sigma_t = float(self.alpha_t[index + 1]), float(self.sigma_t[index + 1])
        sigma_s = float(self.sigma_t[index])
        h = float(self.lambda_t[index + 1] - self.lambda_t[index])
        d0, d1 = self._outputs[0], None
        if len(self._outputs) >= 2 and not final:
            h_last = float(self.lambda_t[index] - self.lambda_t[index - 1])
            d1 = (h / h_last) * (d0 - self._outputs[1])
        if fresh is None:
            prev = (sigma_t / sigma_s) * sample - (alpha_t * math.expm1(-h)) * d0
            if d1 is not None:
                prev = prev - (alpha_t * 0.5 * math.expm1(-h)) * d1
        elif final:  # sigma 0: the prediction itself (eta * h would be 0 * inf at eta 0)
            prev = alpha_t * d0
        else:
            # k-diffusion's sample_dpmpp_2m_sde in these variables; eta 1 is diffusers' step.
            eta_h = float(self.eta or 0.0) * h
            damp = -math.expm1(-h - eta_h)
            prev = (
                (sigma_t / sigma_s * math.exp(-eta_h)) * sample
                + (alpha_t * damp) * d0
                + (sigma_t * math.sqrt(-math.expm1(-2.0 * eta_h))) * fresh
            )
            if d1 is not None:
                midpoint = self.solver_type == "midpoint"
                weight = 0.5 * damp if midpoint else damp / (-h - eta_h) + 1.0
                prev = prev + (alpha_t * weight) * d1
        return prev.astype(sample.dtype, copy=False)
