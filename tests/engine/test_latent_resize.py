"""img2img with a latent resize (A1111's "Just resize (latent upscale)"): the init image is
encoded at its own size and its latents are resized by torch's bilinear ``interpolate``
(the oracle here), instead of the picture being resized."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from impasto.engine import GenerationParams, InvalidRequestError, StableDiffusion
from impasto.engine.pipeline import DenoiseResult
from impasto.engine.vae import array_to_images, image_to_array
from tests.engine.conftest import small


def _picture(width: int, height: int) -> Image.Image:
    """A picture whose halves differ, so a stretch and a latent resize cannot agree by luck."""
    rng = np.random.default_rng(width * 1000 + height)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2] //= 3
    return Image.fromarray(pixels)


def _torch_resized(pipe: StableDiffusion, image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The image's latents at its own size, resized by torch to ``size`` (latent h, w)."""
    latents = pipe.vae.encode(image_to_array(image))
    resized = torch.nn.functional.interpolate(torch.from_numpy(latents), size=size, mode="bilinear")
    return resized.numpy()


def _decoded(pipe: StableDiffusion, latents: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(im, dtype=np.int16) for im in array_to_images(pipe.vae.decode(latents))]


def _starts(pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray | None]:
    """The ``init_latents`` each denoise of ``pipe`` is given, from now on."""
    seen: list[np.ndarray | None] = []
    denoise = pipe.denoise

    def spy(*args: Any, **kwargs: Any) -> DenoiseResult:
        seen.append(kwargs.get("init_latents"))
        return denoise(*args, **kwargs)

    monkeypatch.setattr(pipe, "denoise", spy)
    return seen


def test_no_step_gives_the_resized_latents_decoded(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At strength 0 the run is its start: the own-size latents resized, then decoded."""
    image = _picture(128, 64)
    params = small(init_image=image, latent_resize=True, strength=0.0)
    starts = _starts(pipe, monkeypatch)
    [out] = pipe.generate(params)
    assert out.image.size == (64, 64)
    np.testing.assert_allclose(starts[0], _torch_resized(pipe, image, (8, 8)), atol=1e-5)
    [expected] = _decoded(pipe, _torch_resized(pipe, image, (8, 8)))
    got = np.asarray(out.image, dtype=np.int16)
    assert np.abs(got - expected).max() <= 1
    # Not the picture stretched and encoded: that is another start.
    stretched = small(init_image=image.resize((64, 64), Image.Resampling.LANCZOS), strength=0.0)
    [plain] = pipe.generate(stretched)
    assert np.abs(np.asarray(plain.image, dtype=np.int16) - expected).max() > 8


def test_a_run_starts_from_the_resized_latents(pipe: StableDiffusion) -> None:
    """With steps (and a batch, and the noise multiplier): the run from the torch-resized
    latents, as a hires pass starts from latents."""
    image = _picture(64, 112)
    params = small(
        init_image=image, latent_resize=True, strength=0.6, noise_multiplier=0.9, batch_size=2
    )
    got = [np.asarray(g.image, dtype=np.int16) for g in pipe.generate(params)]
    start = np.repeat(_torch_resized(pipe, image, (8, 8)), 2, axis=0)
    from_latents = replace(params, init_image=None, latent_resize=False)
    result = pipe.denoise(from_latents, init_latents=start)
    expected = _decoded(pipe, result.latents)
    for ours, theirs in zip(got, expected, strict=True):
        assert np.abs(ours - theirs).max() <= 1
    assert np.abs(got[0] - got[1]).max() > 0  # seed and seed + 1


def test_a_padded_canvas_extends_the_resized_latents_by_their_edges(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """72x64 runs on the tiny UNet's 80x64 canvas: the latents resized to 9x8, their last
    column repeated, the picture cropped back."""
    image = _picture(96, 80)
    params = small(width=72, init_image=image, latent_resize=True, strength=0.5)
    starts = _starts(pipe, monkeypatch)
    [out] = pipe.generate(params)
    assert out.image.size == (72, 64)
    start = np.pad(_torch_resized(pipe, image, (8, 9)), ((0, 0), (0, 0), (0, 0), (0, 1)), "edge")
    np.testing.assert_allclose(starts[0], start, atol=1e-5)
    monkeypatch.undo()
    canvas = replace(params, width=80, init_image=None, latent_resize=False)
    [expected] = _decoded(pipe, pipe.denoise(canvas, init_latents=start).latents)
    assert np.abs(np.asarray(out.image, dtype=np.int16) - expected[:, :72]).max() <= 1


def test_an_image_of_the_run_size_is_a_plain_img2img(pipe: StableDiffusion) -> None:
    """Nothing to resize: the same images as img2img, the noise multiplier applied alike."""
    image = _picture(64, 64)
    plain = small(init_image=image, strength=0.7, noise_multiplier=0.8)
    [a] = pipe.generate(plain)
    [b] = pipe.generate(replace(plain, latent_resize=True))
    diff = np.abs(np.asarray(a.image, dtype=np.int16) - np.asarray(b.image, dtype=np.int16))
    assert diff.max() <= 1


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mask_image": Image.new("L", (128, 64), 255)}, "resize_mode"),
        ({"init_image": None}, "resize_mode"),
        ({"init_image": Image.new("RGB", (100, 64))}, "init_image"),
        ({"init_image": Image.new("RGB", (48, 64))}, "init_image"),
    ],
)
def test_what_a_latent_resize_refuses(
    pipe: StableDiffusion, overrides: dict[str, object], field: str
) -> None:
    values: dict[str, object] = {"init_image": _picture(128, 64), "latent_resize": True}
    params = small(**{**values, **overrides})
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(params)
    assert caught.value.field == field


def test_an_inpainting_unet_refuses_it(pipe_inpaint: StableDiffusion) -> None:
    params: GenerationParams = small(init_image=_picture(128, 64), latent_resize=True)
    with pytest.raises(InvalidRequestError) as caught:
        pipe_inpaint.generate(params)
    assert caught.value.field == "resize_mode"
