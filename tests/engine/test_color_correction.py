"""A1111's img2img colour correction, step by step against its own parts: OpenCV's 8-bit Lab
conversions (cv2), scikit-image's ``match_histograms``, and the luminosity blend written here
from the W3C compositing spec (SetLum and ClipColor, one pixel at a time, as blendmodes 2022
runs it); then the pipeline: which picture a run is corrected to, and when."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import exposure

from impasto.engine import InvalidRequestError, StableDiffusion
from impasto.engine.color_correction import (
    color_corrected,
    lab8_to_rgb,
    matched_channel,
    rgb_to_lab8,
    with_luminosity,
)
from tests.engine.conftest import small

RNG = np.random.default_rng(11)


def _grid(step: int) -> np.ndarray:
    """Every ``step``-th value on each 8-bit channel, 255 included, as a column of pixels."""
    values = np.unique(np.r_[np.arange(0, 256, step), 255])
    cube = np.stack(np.meshgrid(values, values, values, indexing="ij"), -1)
    return cube.reshape(-1, 1, 3).astype(np.uint8)


def test_lab_conversions_are_opencvs_8_bit_ones() -> None:
    grid = _grid(3)
    assert np.array_equal(rgb_to_lab8(grid), cv2.cvtColor(grid, cv2.COLOR_RGB2LAB))
    assert np.array_equal(lab8_to_rgb(grid), cv2.cvtColor(grid, cv2.COLOR_LAB2RGB))


@pytest.mark.parametrize(("source", "template"), [((40, 50), (40, 50)), ((32, 48), (70, 20))])
def test_histogram_matching_is_scikit_images_on_8_bits(
    source: tuple[int, int], template: tuple[int, int]
) -> None:
    image = RNG.integers(20, 200, (*source, 3), dtype=np.uint8)
    reference = RNG.integers(0, 256, (*template, 3), dtype=np.uint8)
    expected = exposure.match_histograms(image, reference, channel_axis=2)
    ours = np.stack([matched_channel(image[..., i], reference[..., i]) for i in range(3)], -1)
    assert expected.dtype == np.uint8 and np.array_equal(ours, expected)


def _lum(colour: list[float]) -> float:
    return colour[0] * 0.299 + colour[1] * 0.587 + colour[2] * 0.114


def _set_lum(colour: list[float], luminosity: float) -> list[float]:
    """The compositing spec's SetLum then ClipColor, for one pixel."""
    delta = luminosity - _lum(colour)
    moved = [c + delta for c in colour]
    lum, low, high = _lum(moved), min(moved), max(moved)
    if low < 0:
        moved = [lum + (c - lum) * lum / (lum - low) for c in moved]
    if high > 1:
        moved = [lum + (c - lum) * (1 - lum) / (high - lum) for c in moved]
    return moved


def test_the_luminosity_blend_is_the_compositing_specs() -> None:
    colours = RNG.random((12, 10, 3))
    colours[0, :3] = [[1, 0, 0], [0, 0, 1], [0.5, 0.5, 0.5]]  # pushed out of 0..1 both ways
    luminosity = RNG.random((12, 10))
    luminosity[0, :3] = [0.95, 0.02, 1.0]
    ours = with_luminosity(colours, luminosity)
    for y in range(12):
        for x in range(10):
            expected = _set_lum(list(colours[y, x]), float(luminosity[y, x]))
            assert ours[y, x] == pytest.approx(expected, abs=1e-12)


def _a1111(image: Image.Image, reference: Image.Image) -> np.ndarray:
    """A1111's apply_color_correction with setup_color_correction(reference), from its parts."""
    target = cv2.cvtColor(np.asarray(reference), cv2.COLOR_RGB2LAB)
    pixels = np.asarray(image)
    lab = exposure.match_histograms(cv2.cvtColor(pixels, cv2.COLOR_RGB2LAB), target, channel_axis=2)
    colours = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB) / 255
    blended = np.empty(colours.shape)
    for y, x in np.ndindex(pixels.shape[:2]):
        blended[y, x] = _set_lum(list(colours[y, x]), _lum(list(pixels[y, x] / 255)))
    return (np.clip(blended, 0, 1) * 255).astype(np.uint8)


def _pair() -> tuple[Image.Image, Image.Image]:
    """A reference and a result that drifted from it: warmer, noisier, brighter."""
    blocks = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    reference = Image.fromarray(blocks).resize((64, 48), Image.Resampling.BICUBIC)
    drift = np.asarray(reference) * [1.25, 0.8, 1.0] + RNG.normal(0, 18, (48, 64, 3)) + 20
    return Image.fromarray(np.clip(drift, 0, 255).astype(np.uint8)), reference


def test_a_corrected_picture_is_a1111s() -> None:
    image, reference = _pair()
    ours = np.asarray(color_corrected(image, reference))
    assert np.array_equal(ours, _a1111(image, reference))
    assert np.abs(ours.astype(int) - np.asarray(image)).mean() > 5  # it did move the colours
    # Another reference size: only its histogram counts.
    bigger = reference.resize((96, 80), Image.Resampling.NEAREST)
    assert np.array_equal(np.asarray(color_corrected(image, bigger)), _a1111(image, bigger))


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_img2img_is_corrected_to_its_init_image_or_the_reference(pipe: StableDiffusion) -> None:
    init = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    plain = small(init_image=init, strength=0.6, batch_size=2)
    images = [g.image for g in pipe.generate(plain)]
    corrected = pipe.generate(replace(plain, color_correction=True))
    for image, fixed in zip(images, corrected, strict=True):
        assert np.array_equal(_pixels(fixed.image), _pixels(color_corrected(image, init)))
        assert not np.array_equal(_pixels(fixed.image), _pixels(image))
    other = Image.new("RGB", (32, 48), (20, 160, 40))
    [to_other] = pipe.generate(
        replace(plain, batch_size=1, color_correction=True, color_reference=other)
    )
    assert np.array_equal(_pixels(to_other.image), _pixels(color_corrected(images[0], other)))


def test_inpainting_corrects_before_the_kept_part_is_pasted_back(pipe: StableDiffusion) -> None:
    """As A1111 orders it: the whole picture corrected, then the unmasked part is the init
    image's own pixels again."""
    init = Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255
    params = small(init_image=init, mask_image=Image.fromarray(mask), strength=0.8)
    [plain] = pipe.generate(params)
    [fixed] = pipe.generate(replace(params, color_correction=True))
    assert np.array_equal(_pixels(fixed.image)[:, :30], _pixels(init)[:, :30])
    assert not np.array_equal(_pixels(fixed.image)[:, 34:], _pixels(plain.image)[:, 34:])


def test_a_latent_resize_is_corrected_to_the_image_at_its_own_size(
    pipe: StableDiffusion,
) -> None:
    init = Image.fromarray(RNG.integers(0, 256, (64, 128, 3), dtype=np.uint8))
    params = small(init_image=init, latent_resize=True, strength=0.5)
    [plain] = pipe.generate(params)
    [fixed] = pipe.generate(replace(params, color_correction=True))
    assert np.array_equal(_pixels(fixed.image), _pixels(color_corrected(plain.image, init)))


def test_what_the_correction_refuses(pipe: StableDiffusion) -> None:
    for params, field in (
        (small(color_correction=True), "color_correction"),
        (
            small(init_image=Image.new("RGB", (64, 64)), color_reference=Image.new("RGB", (8, 8))),
            "color_reference",
        ),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            pipe.generate(params)
        assert caught.value.field == field
