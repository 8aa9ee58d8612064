"""txt2img: start from pure noise scaled to the sampler's first sigma."""

from __future__ import annotations

import numpy as np

from impasto.engine.pipelines.base import TaskPlan
from impasto.engine.schedulers.base import Scheduler


def plan_txt2img(scheduler: Scheduler, noise: np.ndarray) -> TaskPlan:
    """Latents are ``noise * init_noise_sigma`` and every timestep runs."""
    latents = (noise * np.float32(scheduler.init_noise_sigma)).astype(np.float32)
    return TaskPlan(latents=latents, start=0)
