"""The shared body of the samplers that index the training alphas directly (DDIM, PNDM, LCM)."""

from __future__ import annotations

import numpy as np

from .base import SchedulerConfig
from .common import Sampler
from .sigmas import alphas_cumprod


class AlphaSampler(Sampler):
    """Latents stay at unit variance; each index names an integer training timestep."""

    def __init__(
        self, config: SchedulerConfig, schedule: str = "default", eta: float | None = None
    ) -> None:
        """Precompute the training alphas; nothing is laid out until ``set_timesteps``."""
        super().__init__(config, schedule, eta)
        # Zero-SNR models reach alpha_cumprod 0 exactly here, as in diffusers' DDIM and LCM.
        self.alphas_cumprod = alphas_cumprod(config, clamp_zero_snr=False).astype(np.float64)
        self.final_alpha_cumprod = 1.0 if config.set_alpha_to_one else float(self.alphas_cumprod[0])

    def alpha_at(self, timestep: float) -> float:
        """alpha_cumprod of a training timestep; negative ones mean "fully denoised"."""
        return (
            float(self.alphas_cumprod[int(timestep)]) if timestep >= 0 else self.final_alpha_cumprod
        )

    def scale_model_input(self, sample: np.ndarray, index: int) -> np.ndarray:
        """The UNet sees the latents unscaled."""
        return sample

    def add_noise(self, original: np.ndarray, noise: np.ndarray, index: int) -> np.ndarray:
        """Noise to timestep ``timesteps[index]``: sqrt(a) x + sqrt(1 - a) noise."""
        alpha = self.alpha_at(float(self.timesteps[index]))
        return alpha**0.5 * original + (1 - alpha) ** 0.5 * noise
