"""Sizes the UNet cannot divide are generated on the next size it can, then cropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from impasto.engine import GenerationParams, load_pipeline
from impasto.engine.padding import pad_params, padded_size, size_multiple

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"


def test_size_multiple_follows_the_down_blocks() -> None:
    sd15 = {"down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"]}
    assert size_multiple(sd15) == 64
    assert size_multiple({"block_out_channels": [32, 64]}) == 16
    assert padded_size(520, 512, 64) == (576, 512)


def test_odd_size_is_the_crop_of_the_padded_canvas() -> None:
    pipe = load_pipeline(TINY / "sd-tiny")
    assert pipe.size_multiple == 16
    params = GenerationParams(prompt="a boat", width=72, height=64, steps=3, seed=5)
    [odd] = pipe.generate(params)
    [full] = pipe.generate(GenerationParams(prompt="a boat", width=80, height=64, steps=3, seed=5))
    assert odd.image.size == (72, 64) and odd.seed == 5
    assert np.array_equal(np.asarray(odd.image), np.asarray(full.image)[:, :72])
    pipe.close()


def test_init_image_is_edge_extended_and_mask_kept() -> None:
    init = Image.new("RGB", (72, 64), (10, 200, 30))
    mask = Image.new("L", (72, 64), 255)
    params = GenerationParams(prompt="x", width=72, height=64, init_image=init, mask_image=mask)
    padded = pad_params(params, (80, 64))
    assert (padded.width, padded.height) == (80, 64)
    assert padded.init_image is not None and padded.mask_image is not None
    assert padded.init_image.getpixel((79, 10)) == (10, 200, 30)
    assert padded.mask_image.getpixel((79, 10)) == 0 and padded.mask_image.getpixel((71, 10)) == 255


def test_odd_size_inpaint_runs() -> None:
    pipe = load_pipeline(TINY / "sd-tiny-inpaint")
    init = Image.new("RGB", (72, 88), (200, 0, 0))
    mask = Image.new("L", (72, 88), 255)
    params = GenerationParams(
        prompt="x", width=72, height=88, steps=2, seed=1, init_image=init, mask_image=mask
    )
    [image] = pipe.generate(params)
    assert image.image.size == (72, 88)
    pipe.close()
