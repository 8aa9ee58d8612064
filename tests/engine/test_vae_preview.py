"""Tiled VAE decode and the cheap previews."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from impasto.engine import StableDiffusion
from impasto.engine.preview import FastDecoder, Previewer, linear_preview
from impasto.engine.vae import Vae


class PointwiseDecoder:
    """A decoder with no spatial context (x8 nearest upsampling): tiles must be invisible."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def run(self, feeds: dict[str, Any], output: int = 0) -> np.ndarray:
        latents = feeds["latent_sample"]
        self.shapes.append(latents.shape)
        rgb = np.tanh(latents[:, :3])
        return rgb.repeat(8, axis=2).repeat(8, axis=3)


def _latents(h: int, w: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((batch, 4, h, w)).astype(np.float32)


def test_tiled_blend_reassembles_a_context_free_decoder_exactly() -> None:
    decoder = PointwiseDecoder()
    vae = Vae(decoder, None, 0.18215, tile_latent=8, tile_overlap=3)  # type: ignore[arg-type]
    latents = _latents(20, 29)
    tiled = vae.decode(latents)
    assert all(s[2] <= 8 and s[3] <= 8 for s in decoder.shapes) and len(decoder.shapes) > 4
    plain = np.tanh(latents[:, :3] / 0.18215).repeat(8, axis=2).repeat(8, axis=3)
    np.testing.assert_allclose(tiled, plain, atol=1e-6)


def test_small_latents_are_decoded_in_one_call() -> None:
    decoder = PointwiseDecoder()
    vae = Vae(decoder, None, 1.0, tile_latent=8, tile_overlap=2)  # type: ignore[arg-type]
    vae.decode(_latents(8, 8, batch=2))
    assert decoder.shapes == [(1, 4, 8, 8), (1, 4, 8, 8)]  # one image at a time, untiled


def test_tiled_decode_is_close_to_plain_decode_on_the_real_vae(pipe: StableDiffusion) -> None:
    latents = _latents(24, 40) * 0.8
    plain = pipe.vae.decode(latents)  # below the default tile size: one call
    tiled = Vae(pipe.vae.decoder, None, pipe.vae.scaling_factor, 16, 8).decode(latents)
    assert tiled.shape == plain.shape == (1, 3, 192, 320)
    # GroupNorm and the mid-block attention see one tile at a time, so tiles cannot be bit-equal
    # to a plain decode; on this random-weight VAE they stay within a few grey levels on average.
    assert np.abs(tiled - plain).mean() < 0.05
    assert np.abs(tiled - plain).mean() < 0.3 * np.abs(plain - plain.mean()).mean()


def test_bad_tile_settings_are_refused(pipe: StableDiffusion) -> None:
    with pytest.raises(ValueError):
        Vae(pipe.vae.decoder, None, 1.0, tile_latent=8, tile_overlap=8)


def test_linear_preview_is_latent_sized_rgb() -> None:
    latents = np.zeros((2, 4, 6, 10), np.float32)
    latents[0, 0] = 2.0  # channel 0 maps to warm colours
    preview = linear_preview(latents)
    assert preview.size == (10, 6) and preview.mode == "RGB"
    r, g, b = np.asarray(preview)[0, 0]
    assert r > g > 127 and b > 127


def test_previewer_uses_taesd_when_present() -> None:
    decoder = PointwiseDecoder()
    decoder.inputs = {"latent_sample": None}  # type: ignore[attr-defined]
    previewer = Previewer(FastDecoder(decoder))  # type: ignore[arg-type]
    image = previewer(_latents(4, 4, batch=2))
    assert decoder.shapes == [(1, 4, 4, 4)] and image.size == (32, 32)


def test_large_previews_are_decoded_from_pooled_latents() -> None:
    """A 512 px generation's TAESD preview decodes 32x32 latents (a quarter of the pixels)."""
    decoder = PointwiseDecoder()
    decoder.inputs = {"latent_sample": None}  # type: ignore[attr-defined]
    latents = _latents(64, 48)
    image = Previewer(FastDecoder(decoder))(latents)  # type: ignore[arg-type]
    assert decoder.shapes == [(1, 4, 32, 24)] and image.size == (192, 256)
    pooled = latents[0, :, :2, :2].mean(axis=(1, 2))
    sent = np.arctanh(np.clip(np.asarray(image, np.float32)[0, 0] / 127.5 - 1, -0.999, 0.999))
    assert np.allclose(sent, pooled[:3], atol=0.02)
