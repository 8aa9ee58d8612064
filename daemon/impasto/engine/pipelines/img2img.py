"""img2img: noise the init image's latents to the level ``strength`` picks, then denoise."""

from __future__ import annotations

import numpy as np
from PIL import Image

from impasto.engine.pipelines.base import TaskPlan
from impasto.engine.pipelines.image_steps import start_index
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.vae import Vae, image_to_array


def encode_init_image(vae: Vae, image: Image.Image, batch: int) -> np.ndarray:
    """The init image's scaled latents, repeated for each batch image (encoded once)."""
    latents = vae.encode(image_to_array(image))
    return np.repeat(latents, batch, axis=0)


def noised_start(
    scheduler: Scheduler,
    init_latents: np.ndarray,
    noise: np.ndarray,
    steps: int,
    strength: float,
    multiplier: float = 1.0,
    extra: float = 0.0,
    mode: str = "strength",
) -> tuple[np.ndarray, int]:
    """First latents and index: ``add_noise`` at the start index (the noise times
    ``multiplier``, A1111's "Noise multiplier"), or the clean latents if no step runs.
    ``extra`` (A1111's "Extra noise") adds that noise once more, times ``extra``, at the
    latents' scale (as A1111 adds ``noise * extra`` to k-diffusion's latents).

    Strength so low that no step runs leaves the init latents unchanged, where diffusers
    would refuse; the result is then the init image through the VAE. ``mode`` counts the
    steps (``image_steps``), on a scheduler laid out for its count.
    """
    start = start_index(scheduler, steps, strength, mode)
    if start >= len(scheduler.timesteps):
        return init_latents.copy(), len(scheduler.timesteps)
    if multiplier != 1.0:
        noise = noise * np.float32(multiplier)
    latents = scheduler.add_noise(init_latents, noise, start)
    if extra:
        # add_noise is linear: with no noise it gives the noise at the latents' own scale
        # (itself for sigma-scaled latents, times sqrt(alpha_cumprod) for the others).
        scaled = scheduler.add_noise(noise, np.zeros_like(noise), start)
        latents = latents + np.float32(extra) * scaled
    return latents.astype(np.float32), start


def plan_img2img(
    scheduler: Scheduler,
    vae: Vae,
    image: Image.Image,
    noise: np.ndarray,
    steps: int,
    strength: float,
    multiplier: float = 1.0,
    extra: float = 0.0,
    mode: str = "strength",
) -> TaskPlan:
    """Latents from the encoded init image noised to ``strength`` (the noise times
    ``multiplier``, and ``extra`` of it once more), its steps counted as ``mode`` says."""
    init_latents = encode_init_image(vae, image, noise.shape[0])
    latents, start = noised_start(
        scheduler, init_latents, noise, steps, strength, multiplier, extra, mode
    )
    return TaskPlan(latents=latents, start=start)
