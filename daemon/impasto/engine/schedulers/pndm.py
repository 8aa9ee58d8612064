"""PNDM as the Stable Diffusion pipelines use it: PLMS only (diffusers PNDMScheduler,
``skip_prk_steps=True``).

``timesteps`` holds N+1 entries laid out like diffusers': t0, t1, t1, t2, ..., t_{N-1}.
Index 0 takes an Euler-like step, index 1 re-does it with the average of both outputs
(a pseudo improved-Euler start), and from index 2 on each call is a linear multistep of
order up to 4 over the outputs at indices 0, 2, 3, ...
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .base import NoiseFn, SchedulerConfig
from .sigmas import alphas_cumprod, spaced_timesteps
from .vp_base import AlphaSampler

# Adams-Bashforth weights by the number of outputs in the history, newest first.
PLMS_WEIGHTS = {
    1: (1.0,),
    2: (3 / 2, -1 / 2),
    3: (23 / 12, -16 / 12, 5 / 12),
    4: (55 / 24, -59 / 24, 37 / 24, -9 / 24),
}


class PNDMSampler(AlphaSampler):
    """Pseudo linear multistep sampling (Liu et al. 2022)."""

    def __init__(
        self, config: SchedulerConfig, schedule: str = "default", eta: float | None = None
    ) -> None:
        """As AlphaSampler, but a zero-SNR last alpha is clamped so the step stays finite."""
        super().__init__(config, schedule, eta)
        self.alphas_cumprod = alphas_cumprod(config).astype(np.float64)
        self._reset()

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the PLMS calls and the timestep each one steps from and to."""
        spaced = spaced_timesteps(self.config, num_inference_steps, integer=True)
        # diffusers steps by a fixed T // N whatever the spacing; kept so outputs agree.
        stride = self.config.num_train_timesteps // num_inference_steps
        self.timesteps = np.concatenate([spaced[:1], spaced[1:2], spaced[1:]])
        self.step_from = self.timesteps.copy()
        self.step_to = self.timesteps - stride
        if len(self.timesteps) > 1:
            self.step_from[1], self.step_to[1] = spaced[1] + stride, spaced[1]
        self._reset()

    def _reset(self) -> None:
        self._outputs: deque[np.ndarray] = deque(maxlen=4)
        self._start: np.ndarray | None = None
        self._last_index = -2

    def step(
        self, model_output: np.ndarray, index: int, sample: np.ndarray, noise: NoiseFn
    ) -> np.ndarray:
        """One PLMS update; the multistep order grows with this run's history."""
        consecutive = index == self._last_index + 1
        self._last_index = index
        if index == 1:
            if not consecutive or self._start is None:
                # Starting on the correction call: there is no step to correct, and the
                # sample already sits at this call's timestep, where index 2 picks it up.
                return sample
            combined = (model_output + self._outputs[0]) / 2
            sample, self._start = self._start, None
        else:
            if not consecutive:
                self._outputs.clear()
            self._outputs.appendleft(model_output)
            weights = PLMS_WEIGHTS[len(self._outputs)]
            combined = sum(
                (w * out for w, out in zip(weights, self._outputs, strict=False)),
                start=np.zeros_like(model_output),
            )
            self._start = sample if index == 0 else None
        prev = self._transfer(sample, combined, self.step_from[index], self.step_to[index])
        return prev.astype(sample.dtype, copy=False)

    def _transfer(
        self, sample: np.ndarray, model_output: np.ndarray, t: float, t_prev: float
    ) -> np.ndarray:
        """Move ``sample`` from timestep t to t_prev along the model's noise estimate."""
        alpha, alpha_prev = self.alpha_at(t), self.alpha_at(t_prev)
        beta, beta_prev = 1 - alpha, 1 - alpha_prev
        if self.config.prediction_type == "v_prediction":
            model_output = alpha**0.5 * model_output + beta**0.5 * sample
        elif self.config.prediction_type != "epsilon":
            raise ValueError("PNDM supports the epsilon and v_prediction prediction types")
        denominator = alpha * beta_prev**0.5 + (alpha * beta * alpha_prev) ** 0.5
        return (alpha_prev / alpha) ** 0.5 * sample - (
            alpha_prev - alpha
        ) * model_output / denominator
