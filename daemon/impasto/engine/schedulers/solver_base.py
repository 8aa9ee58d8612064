"""The shared body of the exponential-integrator multistep samplers (DPM-Solver++, UniPC)."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np

from .base import SchedulerConfig
from .common import Sampler
from .schedules import NAMED_SCHEDULES
from .sigmas import SCHEDULES, sigma_to_alpha_sigma, solver_schedule, vp_denoised


class SolverSampler(Sampler):
    """Latents stay at unit variance; steps work in log-SNR (lambda) on x0 predictions."""

    discards_penultimate: ClassVar[bool | None] = False

    schedules: ClassVar[tuple[str, ...]] = SCHEDULES
    history = 2
    round_cosine_karras = True

    def __init__(
        self, config: SchedulerConfig, schedule: str = "default", eta: float | None = None
    ) -> None:
        """Keep the config; nothing is laid out until ``set_timesteps``."""
        super().__init__(config, schedule, eta)
        self._reset()

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Lay out the timesteps and each one's alpha_t, sigma_t and lambda_t."""
        self.timesteps, self.sigmas, _ = solver_schedule(
            self.config, num_inference_steps, self.schedule, self.round_cosine_karras
        )
        self.alpha_t, self.sigma_t = sigma_to_alpha_sigma(self.sigmas)
        # diffusers starts its own schedules from unit noise; the A1111 ones start, as
        # k-diffusion does, from noise at the top sigma (alpha-scaled here), or with the SGM
        # noise multiplier from the unit noise (sqrt(sigma^2 + 1) times it, alpha-scaled).
        at_top = self.schedule in NAMED_SCHEDULES and not self.config.sgm_noise_multiplier
        self.init_noise_sigma = float(self.sigma_t[0]) if at_top else 1.0
        # The final sigma is 0, so its lambda is +inf; the final step is first order
        # and only needs exp(-inf) = 0 from it.
        with np.errstate(divide="ignore"):
            self.lambda_t = np.log(self.alpha_t) - np.log(self.sigma_t)
        self._reset()

    def _reset(self) -> None:
        """Forget the model outputs of a previous run."""
        self._outputs: deque[np.ndarray] = deque(maxlen=self.history)
        self._last_index = -2

    def _remember(self, index: int, x0: np.ndarray) -> None:
        """Push this step's x0 prediction, dropping history that is not from index - 1."""
        if index != self._last_index + 1:
            self._outputs.clear()
        self._last_index = index
        self._outputs.appendleft(x0)

    def denoised(self, model_output: np.ndarray, index: int, sample: np.ndarray) -> np.ndarray:
        """The x0 prediction at ``index``."""
        return vp_denoised(
            model_output,
            sample,
            float(self.alpha_t[index]),
            float(self.sigma_t[index]),
            self.config.prediction_type,
        )

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        """The UNet sees the latents unscaled."""
        return sample

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Noise to ``index``: alpha_t x + sigma_t noise."""
        return float(self.alpha_t[index]) * original + float(self.sigma_t[index]) * noise
