"""img2img from an image of another size by resizing its latents, not its pixels.

AUTOMATIC1111's resize mode "Just resize (latent upscale)": the init image is encoded at its
own size and the latents are resized to the run's (torch's bilinear ``interpolate``,
``align_corners=False``: ``upscale_latents``' ``latent`` mode). A run on a padded canvas
(``padding``) extends them by their edge latents, as the pixels of a padded image are.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from impasto.engine.padding import VAE_FACTOR
from impasto.engine.upscale_latents import upscale_latents
from impasto.engine.vae import Vae, image_to_array


def resized_init_latents(
    vae: Vae, image: Image.Image, size: tuple[int, int], canvas: tuple[int, int], batch: int
) -> np.ndarray:
    """[batch, 4, canvas / 8] latents: ``image`` encoded at its own size, resized to
    ``size`` / 8 (width, height), then edge-extended to ``canvas`` / 8."""
    latents = vae.encode(image_to_array(image))
    height, width = size[1] // VAE_FACTOR, size[0] // VAE_FACTOR
    if latents.shape[2:] != (height, width):
        latents = upscale_latents(latents, height, width, "latent")
    extra = (canvas[1] // VAE_FACTOR - height, canvas[0] // VAE_FACTOR - width)
    if any(extra):
        latents = np.pad(latents, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])), mode="edge")
    return np.repeat(latents, batch, axis=0)
