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


class FastDecoder:
    """TAESD's decoder (diffusers' AutoencoderTiny decoder exported to ONNX).

    It takes UNet-space latents (its scaling factor is 1) and returns RGB in [-1, 1], at a
    small fraction of the cost of the model's VAE decoder, with softer detail.
    """

    def __init__(self, model: OrtModel) -> None:
        self.model = model
        self._input = next(iter(model.inputs))

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Scaled latents [N, 4, h, w] to [N, 3, 8h, 8w] in [-1, 1], one image at a time."""
        rows = [self.model.run({self._input: row[None]}) for row in latents]
        return np.concatenate(rows).astype(np.float32)


PREVIEW_LATENT_SIDE = 32
"""Latents larger than this (256 px) are averaged down before a TAESD preview: the decode's
cost grows with the pixels, and a preview need not be full size to be read."""


def preview_latents(latents: np.ndarray) -> np.ndarray:
    """The first image's latents, average-pooled by a whole factor to at most 32 a side."""
    first = latents[:1].astype(np.float32)
    _, c, h, w = first.shape
    factor = max(1, -(-max(h, w) // PREVIEW_LATENT_SIDE))
    if factor == 1:
        return first
    h2, w2 = h // factor, w // factor
    cropped = first[:, :, : h2 * factor, : w2 * factor]
    return cropped.reshape(1, c, h2, factor, w2, factor).mean(axis=(3, 5))


class Previewer:
    """Makes previews with a fast decoder (TAESD) when one is installed, else linearly."""

    def __init__(self, fast: FastDecoder | None = None) -> None:
        self.fast = fast

    def __call__(self, latents: np.ndarray) -> Image.Image:
        """A preview of the first image of ``latents`` (at most 256 px a side with TAESD)."""
        if self.fast is None:
            return linear_preview(latents)
        return array_to_images(self.fast.decode(preview_latents(latents)))[0]
