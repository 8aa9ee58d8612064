"""An inpainting model (a 9-channel UNet) with no mask, and the conditioning mask weight: what
the UNet's five extra channels hold, as AUTOMATIC1111 conditions it (its
``txt2img_image_conditioning`` and ``inpainting_image_conditioning``)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from impasto.engine import InvalidRequestError, StableDiffusion
from impasto.engine.types import HiresParams
from impasto.engine.vae import Vae

from .conftest import small


def _picture() -> Image.Image:
    pixels = np.random.default_rng(5).uniform(0, 255, (64, 64, 3)).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _pixels(image: Image.Image) -> np.ndarray:
    """[1, 3, H, W] in [-1, 1], computed here, not with the engine's helper."""
    return (np.asarray(image, np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]


@pytest.fixture
def seen(pipe_inpaint: StableDiffusion) -> Iterator[list[np.ndarray]]:
    """Every sample the inpainting UNet is given, in order."""
    calls: list[np.ndarray] = []
    run = pipe_inpaint.unet.run

    def spy(sample: np.ndarray, t: float, hidden: object) -> np.ndarray:
        calls.append(sample.copy())
        return run(sample, t, hidden)

    pipe_inpaint.unet.run = spy  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del pipe_inpaint.unet.run


def _extra(pipe: StableDiffusion, pixels: np.ndarray) -> np.ndarray:
    """The channels A1111 adds for a run with no mask: ones, then ``pixels`` encoded."""
    latents = pipe.vae.encode(pixels.astype(np.float32))
    ones = np.ones((len(latents), 1, *latents.shape[-2:]), np.float32)
    return np.concatenate([ones, latents], axis=1)


def test_txt2img_shows_the_unet_a_grey_picture_to_repaint_whole(
    pipe_inpaint: StableDiffusion, seen: list[np.ndarray]
) -> None:
    """txt2img on an inpainting model (refused before): a mask of ones beside a grey picture,
    the same UNet inputs as inpainting a picture under an all-white mask from pure noise."""
    out = pipe_inpaint.generate(small(steps=3))
    assert len(out) == 1 and out[0].image.size == (64, 64)
    assert len(seen) == 3 and seen[0].shape == (2, 9, 8, 8)
    grey = _extra(pipe_inpaint, np.zeros((1, 3, 64, 64)))
    for sample in seen:
        np.testing.assert_allclose(sample[:, 4:], np.repeat(grey, 2, axis=0), atol=1e-6)
    txt2img = [sample.copy() for sample in seen]
    seen.clear()
    white = Image.new("L", (64, 64), 255)
    masked = small(steps=3, init_image=_picture(), mask_image=white, strength=1.0)
    pipe_inpaint.denoise(masked)
    for ours, inpainted in zip(txt2img, seen, strict=True):
        np.testing.assert_allclose(ours, inpainted, atol=1e-5)


@pytest.mark.parametrize("weight", [1.0, 0.4, 0.0])
def test_img2img_shows_the_picture_faded_by_the_weight(
    pipe_inpaint: StableDiffusion, seen: list[np.ndarray], weight: float
) -> None:
    """img2img with no mask: all to repaint, beside the picture x (1 - weight), A1111's
    lerp(picture, picture x (1 - 1), weight)."""
    image = _picture()
    params = small(steps=4, init_image=image, strength=0.5, inpaint_mask_weight=weight)
    pipe_inpaint.denoise(params)
    assert seen and all(sample.shape == (2, 9, 8, 8) for sample in seen)
    expected = _extra(pipe_inpaint, _pixels(image) * (1.0 - weight))
    np.testing.assert_allclose(seen[0][:1, 4:], expected, atol=1e-5)
    np.testing.assert_allclose(seen[-1][1:, 4:], expected, atol=1e-5)


def test_a_mask_fades_only_its_white_part_by_the_weight(
    pipe_inpaint: StableDiffusion, seen: list[np.ndarray]
) -> None:
    """With a mask: the mask channel stays the mask; the picture is picture x (1 - weight x
    mask), so at 0.25 the masked half shows three quarters of itself."""
    image = _picture()
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    params = small(
        steps=3,
        init_image=image,
        mask_image=Image.fromarray(mask, "L"),
        strength=1.0,
        inpaint_mask_weight=0.25,
    )
    pipe_inpaint.denoise(params)
    np.testing.assert_array_equal(seen[0][:, 4], np.tile([0.0] * 4 + [1.0] * 4, (2, 8, 1)))
    pixels = _pixels(image)
    pixels[..., 32:] *= 0.75
    expected = pipe_inpaint.vae.encode(pixels)
    np.testing.assert_allclose(seen[0][:1, 5:], expected, atol=1e-5)


def test_the_hires_pass_conditions_on_its_own_picture(
    pipe_inpaint: StableDiffusion, seen: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hires pass on an inpainting model: at weight 1 a grey picture at the new size; below
    it, the pass's start as its latents decode (A1111 decodes the upscaled latents), faded."""
    hires = HiresParams(width=96, height=96, upscaler="latent", steps=3, strength=0.6)
    pipe_inpaint.generate(small(steps=2, hires=hires))
    second = [sample for sample in seen if sample.shape[-1] == 12]
    assert second and all(sample.shape == (2, 9, 12, 12) for sample in second)
    grey = _extra(pipe_inpaint, np.zeros((1, 3, 96, 96)))
    np.testing.assert_allclose(second[0][:1, 4:], grey, atol=1e-6)
    seen.clear()
    decoded: list[tuple[np.ndarray, np.ndarray]] = []
    decode = Vae.decode

    def spy(vae: Vae, latents: np.ndarray) -> np.ndarray:
        out = decode(vae, latents)
        decoded.append((latents.copy(), out))
        return out

    monkeypatch.setattr(Vae, "decode", spy)
    pipe_inpaint.generate(small(steps=2, hires=hires, inpaint_mask_weight=0.3))
    # Decoded: the pass's start (upscaled first-pass latents), then the final picture.
    assert [latents.shape for latents, _ in decoded] == [(1, 4, 12, 12)] * 2
    start, picture = decoded[0]
    assert not np.allclose(start, decoded[1][0])
    shown = next(sample for sample in seen if sample.shape[-1] == 12)[:1, 4:]
    np.testing.assert_allclose(shown, _extra(pipe_inpaint, picture * 0.7), atol=1e-5)
    assert np.abs(shown[:, 1:] - grey[:, 1:]).mean() > 0.01


def test_the_weight_is_refused_on_a_model_that_is_no_inpainting_model(
    pipe: StableDiffusion,
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        pipe.denoise(small(init_image=_picture(), inpaint_mask_weight=0.5))
    assert refused.value.field == "inpaint_mask_weight"
    with pytest.raises(InvalidRequestError) as refused:
        pipe.denoise(small(init_image=_picture(), inpaint_mask_weight=1.5))
    assert refused.value.field == "inpaint_mask_weight" and "1" in refused.value.message
