"""An inpainting's paste-back with a grey (blurred) mask edge, as A1111's overlay blends it:
the whole picture reads the mask doubled (from half grey up, the repainted picture alone),
"only masked" reads it as it is. Hard masks keep the init image exactly where black."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from impasto.engine import StableDiffusion
from tests.engine.conftest import small

RNG = np.random.default_rng(21)


def _ramp(width: int, height: int) -> np.ndarray:
    """A mask black on the left, white on the right, grey levels across the middle."""
    mask = np.zeros((height, width), np.uint8)
    mask[:, width // 2 :] = 255
    mask[:, width // 4 : width // 2] = np.linspace(0, 255, width // 4, dtype=np.uint8)
    return mask


def _a1111_overlay(image: Image.Image, init: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's processing.py: the overlay made in StableDiffusionProcessingImg2Img.init, then
    apply_overlay."""
    image_masked = Image.new("RGBa", (init.width, init.height))
    image_masked.paste(init.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask))
    overlay = image_masked.convert("RGBA")
    composed = image.convert("RGBA")
    composed.alpha_composite(overlay)
    return composed.convert("RGB")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def test_the_whole_picture_blends_the_grey_edge_doubled(pipe: StableDiffusion) -> None:
    init = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = _ramp(64, 64)
    params = small(init_image=init, mask_image=Image.fromarray(mask), strength=0.8)
    [pasted] = pipe.generate(params)
    [raw] = pipe.generate(replace(params, extra={"inpaint_overlay": False}))
    repaint = np.clip(mask.astype(np.float64) * 2, 0, 255)[..., None] / 255
    expected = _pixels(init) * (1 - repaint) + _pixels(raw.image) * repaint
    got = _pixels(pasted.image)
    # The blend, within the rounding of a premultiplied overlay; to the bit, A1111's own calls.
    assert np.abs(got - expected).max() <= 2.0
    doubled = Image.fromarray(np.clip(mask.astype(np.int32) * 2, 0, 255).astype(np.uint8))
    assert np.array_equal(got, _pixels(_a1111_overlay(raw.image, init, doubled)))
    assert np.array_equal(got[:, :16], _pixels(init)[:, :16])  # black: the init image
    assert np.array_equal(got[:, 32:], _pixels(raw.image)[:, 32:])  # from half grey: repainted


def test_a_hard_mask_keeps_the_init_image_exactly(pipe: StableDiffusion) -> None:
    init = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 255
    params = small(init_image=init, mask_image=Image.fromarray(mask), strength=0.8)
    [pasted] = pipe.generate(params)
    [raw] = pipe.generate(replace(params, extra={"inpaint_overlay": False}))
    got, kept = _pixels(pasted.image), mask == 0
    assert np.array_equal(got[kept], _pixels(init)[kept])
    assert np.array_equal(got[~kept], _pixels(raw.image)[~kept])


def test_only_masked_blends_the_mask_as_it_is(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crop around the mask is inpainted (with no paste-back of its own) and scaled back;
    the full picture then reads the mask as it is: black keeps the init image, grey blends."""
    init = Image.fromarray(RNG.integers(0, 256, (128, 128, 3), dtype=np.uint8))
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 32:96] = 255
    mask[32:96, 32:48] = 100  # a grey band at the left of the square
    params = small(
        init_image=init,
        mask_image=Image.fromarray(mask),
        strength=0.8,
        inpaint_area="masked",
        inpaint_padding=0,
    )
    inner: list[Any] = []
    generate = pipe.generate

    def spy(run: Any, *args: Any) -> Any:
        images = generate(run, *args)
        if run.inpaint_area == "whole":
            inner.append((run, images[0].image))
        return images

    monkeypatch.setattr(pipe, "generate", spy)
    [out] = pipe.generate(params)
    [(run, patch)] = inner
    assert run.extra.get("inpaint_overlay") is False and patch.size == (64, 64)
    layer = Image.new("RGB", (128, 128))
    layer.paste(patch.resize((64, 64), Image.Resampling.LANCZOS), (32, 32))
    expected = _a1111_overlay(layer, init, Image.fromarray(mask))
    got = _pixels(out.image)
    assert np.array_equal(got, _pixels(expected))
    outside = mask == 0
    assert np.array_equal(got[outside], _pixels(init)[outside])
