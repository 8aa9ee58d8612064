"""The fast decoder (TAESD): the ONNX export equals diffusers' AutoencoderTiny, and the engine
uses it for previews and, when asked, for the final image.

models/tiny/taesd-tiny is a seeded random-weight AutoencoderTiny (models/build_tiny.py), exported
by the same function the installer's converter uses for the public TAESD builds.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest
import torch

from impasto.engine import InvalidRequestError, StableDiffusion
from impasto.engine.preview import FastDecoder
from impasto.engine.sessions import OrtModel
from impasto.engine.types import Progress

from .conftest import TINY, small

TAESD_TINY = TINY / "taesd-tiny"
TOLERANCE = 1e-4  # on outputs in [-1, 1]


def _torch_taesd() -> Any:
    sys.path.insert(0, str(TINY.parent))
    try:
        import build_tiny
    finally:
        sys.path.remove(str(TINY.parent))
    return build_tiny.make_taesd(full=False).eval()


def _reference_decode(latents: np.ndarray) -> np.ndarray:
    """diffusers' AutoencoderTiny.decode of UNet-space latents (its scaling factor is 1)."""
    vae = _torch_taesd()
    assert vae.config.scaling_factor == 1.0
    with torch.no_grad():
        return vae.decode(torch.from_numpy(latents)).sample.numpy()


def test_the_onnx_decoder_equals_diffusers_autoencoder_tiny() -> None:
    from impasto.engine.providers import cpu_choice

    latents = np.random.default_rng(3).standard_normal((2, 4, 12, 8)).astype(np.float32) * 2
    fast = FastDecoder(OrtModel(TAESD_TINY / "taesd_decoder" / "model.onnx", cpu_choice()))
    ours = fast.decode(latents)
    expected = _reference_decode(latents)
    assert ours.shape == (2, 3, 96, 64)
    assert expected.std() > 1e-3, "a flat reference would prove nothing"
    np.testing.assert_allclose(ours, expected, atol=TOLERANCE)


def test_decoder_fast_decodes_the_final_image_with_taesd(pipe: StableDiffusion) -> None:
    params = small(decoder="fast", fast_decoder=TAESD_TINY)
    latents = pipe.denoise(params).latents
    image = pipe.generate(params)[0].image
    expected = np.clip(_reference_decode(latents)[0] / 2 + 0.5, 0, 1).transpose(1, 2, 0) * 255
    assert image.size == (64, 64)
    assert np.abs(np.asarray(image, dtype=np.float64) - expected).max() <= 1.0
    full = pipe.generate(small(fast_decoder=TAESD_TINY))[0].image  # the model's VAE
    assert np.abs(np.asarray(full, np.int32) - np.asarray(image, np.int32)).max() > 10


def test_previews_use_the_fast_decoder_when_one_is_installed(pipe: StableDiffusion) -> None:
    seen: list[Progress] = []
    pipe.generate(small(preview_every=2, fast_decoder=TAESD_TINY), progress=seen.append)
    previews = [p.preview for p in seen if p.preview is not None]
    assert len(previews) == 2 and all(p.size == (64, 64) for p in previews)
    seen.clear()
    pipe.generate(small(preview_every=2), progress=seen.append)  # none: the linear preview
    assert {p.preview.size for p in seen if p.preview is not None} == {(8, 8)}


def test_decoder_fast_without_a_fast_decoder_names_the_field(pipe: StableDiffusion) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(small(decoder="fast"))
    assert caught.value.field == "decoder" and "impasto pull taesd" in caught.value.message
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(small(decoder="quick"))
    assert caught.value.field == "decoder"
