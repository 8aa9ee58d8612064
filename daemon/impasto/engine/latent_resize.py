"""img2img from an image of another size by resizing its latents, not its pixels.

AUTOMATIC1111's resize mode "Just resize (latent upscale)": the init image is encoded at its
own size and the latents are resized to the run's (torch's bilinear ``interpolate``,
``align_corners=False``: ``upscale_latents``' ``latent`` mode). A run on a padded canvas
(``padding``) extends them by their edge latents, as the pixels of a padded image are.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from impasto.engine.color_correction import reference
from impasto.engine.padding import VAE_FACTOR, padded_size
from impasto.engine.types import (
    CancelToken,
    GeneratedImage,
    GenerationParams,
    ProgressCallback,
)
from impasto.engine.upscale_latents import upscale_latents
from impasto.engine.vae import Vae, image_to_array

if TYPE_CHECKING:
    from impasto.engine.pipeline import StableDiffusion


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


def run_latent_resized(
    pipe: StableDiffusion,
    params: GenerationParams,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[GeneratedImage]:
    """img2img from the init image's latents at its own size resized to the run's, on the
    UNet's canvas (``latent_resize``); the images are the canvas's, to be cropped."""
    assert params.init_image is not None
    size = (params.width, params.height)
    canvas = padded_size(params.width, params.height, pipe.size_multiple)
    vae = pipe.vae_for(params)
    start = resized_init_latents(vae, params.init_image, size, canvas, params.batch_size)
    run = replace(
        params,
        init_image=None,
        latent_resize=False,
        color_correction=False,
        width=canvas[0],
        height=canvas[1],
    )
    result = pipe.denoise(run, progress, cancel, init_latents=start)
    return pipe.decoded(run, result, cancel, reference(params))
