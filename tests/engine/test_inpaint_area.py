"""Inpaint area "only masked" and masked content (AUTOMATIC1111's inpaint_full_res and
inpainting_fill), on the random tiny model: geometry, pixels kept, what each run starts from."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter, ImageOps

from impasto.engine import InvalidRequestError, StableDiffusion
from impasto.engine.inpaint_area import crop_box, fill_masked, masked_start
from impasto.engine.pipelines.inpaint import binary_mask, prepare_inputs

from .conftest import small


def _mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def _noise_image(size: tuple[int, int], seed: int = 3) -> Image.Image:
    pixels = np.random.default_rng(seed).uniform(0, 255, (size[1], size[0], 3))
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.mark.parametrize(
    ("mask_box", "padding", "size", "expected"),
    [
        # A 20x10 box padded by 5 is 30x20; a square request grows its height to 30, centred.
        ((40, 40, 60, 50), 5, (64, 64), (35, 30, 65, 60)),
        # A tall box and a wide request: the width grows (10x40 -> 20x40 at 2:1 -> 80x40).
        ((50, 20, 60, 60), 0, (128, 64), (15, 20, 95, 60)),
        # At the image's edge the grown box shifts inside instead of being cut.
        ((0, 0, 10, 10), 0, (64, 32), (0, 0, 20, 10)),
        ((90, 90, 100, 100), 0, (64, 32), (80, 90, 100, 100)),
        # Padding beyond the image is clamped; grown past the image, the whole side.
        ((10, 10, 90, 20), 50, (64, 64), (0, 0, 100, 100)),
        ((0, 0, 100, 30), 0, (32, 64), (0, 0, 100, 100)),
    ],
)
def test_crop_box_pads_the_mask_and_grows_to_the_request_aspect(
    mask_box: tuple[int, int, int, int],
    padding: int,
    size: tuple[int, int],
    expected: tuple[int, int, int, int],
) -> None:
    assert crop_box(_mask((100, 100), mask_box), padding, *size) == expected


def test_crop_box_counts_a_blurred_edge_and_an_empty_mask_means_everything() -> None:
    mask = _mask((100, 100), (40, 40, 60, 60))
    mask.putpixel((20, 50), 1)  # the faintest touch of a brush still counts
    assert crop_box(mask, 0, 64, 64)[0] == 20
    assert crop_box(Image.new("L", (100, 80), 0), 8, 64, 64) == (0, 0, 100, 80)


def test_only_masked_keeps_the_image_size_and_every_pixel_outside_the_mask(
    pipe: StableDiffusion,
) -> None:
    image = _noise_image((160, 96))
    mask = _mask(image.size, (100, 30, 130, 60))
    params = small(init_image=image, mask_image=mask, strength=1.0, steps=4, inpaint_area="masked")
    out = np.asarray(pipe.generate(params)[0].image, np.int32)
    init = np.asarray(image, np.int32)
    assert out.shape == init.shape
    inside = np.asarray(mask) > 0
    assert np.array_equal(out[~inside], init[~inside])
    assert np.abs(out[inside] - init[inside]).mean() > 20


def test_only_masked_inpaints_the_crop_at_the_request_size(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inner run gets the crop scaled to width x height, with its part of the mask."""
    image = _noise_image((160, 96))
    mask = _mask(image.size, (100, 30, 130, 60))
    seen: list[tuple[tuple[int, int], tuple[int, int], float]] = []
    generate = pipe.generate

    def spy(params, *args, **kwargs):  # type: ignore[no-untyped-def]
        if params.inpaint_area == "whole":
            repaint = binary_mask(params.mask_image)
            seen.append((params.init_image.size, params.mask_image.size, float(repaint.mean())))
        return generate(params, *args, **kwargs)

    monkeypatch.setattr(pipe, "generate", spy)
    params = small(
        init_image=image,
        mask_image=mask,
        strength=1.0,
        steps=2,
        inpaint_area="masked",
        inpaint_padding=5,
    )
    pipe.generate(params)
    # The 30x30 mask padded by 5 is a 40x40 crop, scaled to 64x64: the mask fills 30/40 a side.
    assert seen == [((64, 64), (64, 64), pytest.approx((30 / 40) ** 2, abs=0.03))]


def test_only_masked_with_a_blank_mask_runs_the_whole_picture_at_the_request_size(
    pipe: StableDiffusion,
) -> None:
    """A1111 switches to img2img of the whole picture when the mask is blank (there is no
    crop): the image at width x height, as an img2img without a mask gives."""
    image = _noise_image((160, 96))
    blank = Image.new("L", image.size, 0)
    masked = small(init_image=image, mask_image=blank, strength=0.6, steps=3, inpaint_area="masked")
    out = pipe.generate(masked)[0].image
    assert out.size == (64, 64)
    resized = image.resize((64, 64), Image.Resampling.LANCZOS)
    img2img = small(init_image=resized, strength=0.6, steps=3)
    assert np.array_equal(np.asarray(out), np.asarray(pipe.generate(img2img)[0].image))
    assert np.abs(np.asarray(out, np.int32) - np.asarray(resized, np.int32)).mean() > 5


def test_only_masked_is_checked_like_the_rest(pipe: StableDiffusion) -> None:
    image = _noise_image((160, 96))
    wrong = small(init_image=image, mask_image=_mask((64, 64), (0, 0, 8, 8)), inpaint_area="masked")
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(wrong)
    assert caught.value.field == "mask_image"
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(small(inpaint_area="everywhere"))
    assert caught.value.field == "inpaint_area" and "whole, masked" in caught.value.message
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(small(inpaint_padding=300))
    assert caught.value.field == "inpaint_padding"


def test_fill_paints_the_mask_in_the_colours_around_it() -> None:
    pixels = np.zeros((64, 64, 3), np.uint8)
    pixels[:, :32] = (200, 40, 40)  # red left half, blue right half
    pixels[:, 32:] = (40, 40, 200)
    pixels[24:40, 24:40] = (0, 255, 0)  # the green square to paint over
    repaint = np.zeros((64, 64), np.float32)
    repaint[24:40, 24:40] = 1
    mask = Image.fromarray((repaint * 255).astype(np.uint8))
    out = np.asarray(fill_masked(Image.fromarray(pixels), mask), np.int32)
    assert np.array_equal(out[repaint == 0], pixels[repaint == 0])
    hole = out[24:40, 24:40]
    assert hole[..., 1].max() < 60  # no green left
    # Its left side takes the red around it, its right side the blue.
    assert hole[:, 0, 0].mean() > hole[:, 0, 2].mean() + 60
    assert hole[:, -1, 2].mean() > hole[:, -1, 0].mean() + 60


def test_masked_content_sets_what_the_masked_latents_start_from(pipe: StableDiffusion) -> None:
    image = _noise_image((64, 64))
    mask = _mask((64, 64), (32, 0, 64, 64))
    inputs = prepare_inputs(pipe.vae, image, mask, 1, inpaint_unet=False)
    noise = np.random.default_rng(1).standard_normal(inputs.init_latents.shape).astype(np.float32)
    keep, repaint = inputs.mask == 0, inputs.mask == 1
    keep, repaint = (np.broadcast_to(m, noise.shape) for m in (keep, repaint))
    for content, inside in (
        ("original", inputs.init_latents),
        ("latent_noise", noise),
        ("latent_nothing", np.zeros_like(noise)),
    ):
        start = masked_start(inputs.init_latents, inputs.mask, noise, content)
        np.testing.assert_array_equal(start[keep], inputs.init_latents[keep])
        np.testing.assert_allclose(start[repaint], inside[repaint], atol=1e-7)
    filled = prepare_inputs(pipe.vae, image, mask, 1, inpaint_unet=False, masked_content="fill")
    assert not np.allclose(filled.init_latents, inputs.init_latents)


@pytest.mark.parametrize("content", ["fill", "latent_noise", "latent_nothing"])
def test_masked_content_changes_a_partial_strength_inpaint_inside_the_mask_only(
    pipe: StableDiffusion, content: str
) -> None:
    image = _noise_image((64, 64))
    mask = _mask((64, 64), (32, 0, 64, 64))
    base = small(init_image=image, mask_image=mask, strength=0.5, steps=4, seed=7)
    original = np.asarray(pipe.generate(base)[0].image, np.int32)
    from dataclasses import replace

    other = np.asarray(pipe.generate(replace(base, masked_content=content))[0].image, np.int32)
    assert np.array_equal(other[:, :32], original[:, :32])
    assert np.abs(other[:, 32:] - original[:, 32:]).mean() > 2


def _a1111_fill(image: Image.Image, mask: Image.Image) -> Image.Image:
    """A1111's modules/masking.py ``fill``, call for call."""
    image_mod = Image.new("RGBA", (image.width, image.height))
    image_masked = Image.new("RGBa", (image.width, image.height))
    image_masked.paste(
        image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L"))
    )
    image_masked = image_masked.convert("RGBa")
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = image_masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            image_mod.alpha_composite(blurred)
    return image_mod.convert("RGB")


def test_the_fill_is_a1111s_and_every_content_but_the_original_starts_from_it(
    pipe: StableDiffusion,
) -> None:
    image = _noise_image((64, 64))
    grey = np.zeros((64, 64), np.uint8)
    grey[16:48, 16:48] = 255
    grey[16:48, 12:16] = 120  # a blurred edge: partly painted over
    mask = Image.fromarray(grey)
    assert np.array_equal(
        np.asarray(fill_masked(image, mask)), np.asarray(_a1111_fill(image, mask))
    )
    encoded = {
        content: prepare_inputs(pipe.vae, image, mask, 1, False, content).init_latents
        for content in ("original", "fill", "latent_noise", "latent_nothing")
    }
    assert np.array_equal(encoded["fill"], encoded["latent_noise"])
    assert np.array_equal(encoded["fill"], encoded["latent_nothing"])
    assert not np.allclose(encoded["fill"], encoded["original"])
