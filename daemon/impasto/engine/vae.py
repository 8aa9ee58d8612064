"""VAE encode (image to latents) and decode (latents to image), tiled above a size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from impasto.engine.sessions import OrtModel
from impasto.engine.types import EngineError

LATENT_CHANNELS = 4
VAE_FACTOR = 8
DEFAULT_TILE_LATENT = 64  # 512 px: above this a decode is tiled, so memory stays bounded
DEFAULT_TILE_OVERLAP = 16  # 128 px of blended overlap hides seams


def image_to_array(image: Image.Image) -> np.ndarray:
    """An RGB PIL image as a [1, 3, H, W] float32 array in [-1, 1]."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return (pixels * 2.0 - 1.0).transpose(2, 0, 1)[None]


def array_to_images(decoded: np.ndarray) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] to PIL RGB images, rounded as diffusers does."""
    pixels = np.clip(decoded / 2.0 + 0.5, 0.0, 1.0)
    pixels = (pixels.transpose(0, 2, 3, 1) * 255.0).round().astype(np.uint8)
    return [Image.fromarray(p, "RGB") for p in pixels]


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return [*starts, size - tile]


def _ramp(length: int, start: int, tile: int, size: int, overlap: int) -> np.ndarray:
    """1-D blend weights of one tile: linear ramps where it overlaps a neighbour."""
    weights = np.ones(length, dtype=np.float32)
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        weights[:overlap] = np.minimum(weights[:overlap], ramp)
    if start + tile < size:
        weights[-overlap:] = np.minimum(weights[-overlap:], ramp[::-1])
    return weights


class Vae:
    """The VAE sessions of a model folder; latents are in UNet space (scaled)."""

    def __init__(
        self,
        decoder: OrtModel,
        encoder: OrtModel | None,
        scaling_factor: float,
        tile_latent: int = DEFAULT_TILE_LATENT,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
    ) -> None:
        if not 0 < tile_overlap < tile_latent:
            raise ValueError("tile_overlap must be positive and smaller than tile_latent")
        self.decoder = decoder
        self.encoder = encoder
        self.scaling_factor = scaling_factor
        self.tile_latent = tile_latent
        self.tile_overlap = tile_overlap
        self._encoder_output = encoder.output_index(("latent_parameters",)) if encoder else 0

    def encode(self, image: np.ndarray) -> np.ndarray:
        """[N, 3, H, W] in [-1, 1] to scaled latents, using the posterior mean.

        The mean, not a sample: the log-variance of SD's VAE is tiny, so a sample differs from
        the mean by noise far below what the sampler adds, and the mean keeps img2img
        independent of generator state.
        """
        if self.encoder is None:
            raise EngineError("this model folder has no vae_encoder; img2img and inpaint need it")
        rows = [self.encoder.run({"sample": row[None]}, self._encoder_output) for row in image]
        moments = np.concatenate(rows).astype(np.float32)
        mean = moments[:, :LATENT_CHANNELS]  # 8 channels: mean then log-variance
        return (mean * self.scaling_factor).astype(np.float32)

    def _decode_plain(self, latents: np.ndarray) -> np.ndarray:
        out = self.decoder.run({"latent_sample": latents / self.scaling_factor})
        return out.astype(np.float32)

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Scaled latents [N, 4, h, w] to [N, 3, 8h, 8w] in [-1, 1], one image at a time."""
        return np.concatenate([self.decode_one(row[None]) for row in latents])

    def decode_one(self, latents: np.ndarray) -> np.ndarray:
        """Decode one image's latents, in blended tiles when larger than ``tile_latent``."""
        _, _, h, w = latents.shape
        if h <= self.tile_latent and w <= self.tile_latent:
            return self._decode_plain(latents)
        return self.decode_tiled(latents)

    def decode_tiled(self, latents: np.ndarray) -> np.ndarray:
        """Decode overlapping tiles and blend them with linear ramps across each overlap."""
        _, _, h, w = latents.shape
        tile, overlap, f = self.tile_latent, self.tile_overlap, VAE_FACTOR
        out = np.zeros((1, 3, h * f, w * f), dtype=np.float32)
        total = np.zeros((h * f, w * f), dtype=np.float32)
        for y in _starts(h, tile, overlap):
            for x in _starts(w, tile, overlap):
                th, tw = min(tile, h), min(tile, w)
                pixels = self._decode_plain(latents[:, :, y : y + th, x : x + tw])
                wy = _ramp(th * f, y * f, tile * f, h * f, overlap * f)
                wx = _ramp(tw * f, x * f, tile * f, w * f, overlap * f)
                weight = wy[:, None] * wx[None, :]
                out[:, :, y * f : (y + th) * f, x * f : (x + tw) * f] += pixels * weight
                total[y * f : (y + th) * f, x * f : (x + tw) * f] += weight
        return out / total
