"""Cheap previews of in-progress latents: a linear latent-to-RGB map, or TAESD when present."""

from __future__ import annotations

import numpy as np
from PIL import Image

from impasto.engine.sessions import OrtModel
from impasto.engine.vae import array_to_images

# Least-squares fit of SD 1.x/2.x latents (in UNet space) to RGB in [-1, 1]; the same
# approximation AUTOMATIC1111 uses for its "Approx cheap" live preview.
LATENT_RGB = np.array(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ],
    dtype=np.float32,
)


def linear_preview(latents: np.ndarray) -> Image.Image:
    """The first image of [N, 4, h, w] latents as an h x w RGB image, with no model call."""
    rgb = np.einsum("chw,cr->rhw", latents[0].astype(np.float32), LATENT_RGB)
    return array_to_images(rgb[None])[0]


class Previewer:
    """Makes previews with TAESD when the folder has ``taesd_decoder/model.onnx``, else linearly.

    The TAESD decoder is expected as optimum exports diffusers' AutoencoderTiny decoder: it
    takes UNet-space latents (its scaling factor is 1) and returns RGB in [-1, 1].
    """

    def __init__(self, taesd: OrtModel | None = None) -> None:
        self.taesd = taesd
        self._input = next(iter(taesd.inputs)) if taesd is not None else ""

    def __call__(self, latents: np.ndarray) -> Image.Image:
        """A preview of the first image of ``latents``."""
        if self.taesd is None:
            return linear_preview(latents)
        decoded = self.taesd.run({self._input: latents[:1]})
        return array_to_images(decoded.astype(np.float32))[0]
