"""formats/fit.py: A1111's resize modes, where they differ from a plain resize."""

from __future__ import annotations

import numpy as np
from PIL import Image

from impasto.formats.fit import fitted


def test_resize_and_fill_samples_the_edge_as_a1111_does() -> None:
    """A1111 stretches a box of no height on the picture's edge with Pillow's default
    (bicubic) filter, which reaches one row in: 1.125 x the edge row - 0.125 x the next."""
    pixels = np.full((32, 64), 90, np.uint8)
    pixels[0], pixels[-1] = 10, 50
    laid = np.asarray(fitted(Image.fromarray(pixels), "fill", (64, 64))).astype(int)
    assert laid.shape == (64, 64)
    assert (laid[:16] == round(1.125 * 10 - 0.125 * 90)).all()  # 0
    assert (laid[16:48] == pixels).all()
    assert (laid[48:] == round(1.125 * 50 - 0.125 * 90)).all()  # 45


def test_crop_keeps_the_centre_of_a_tall_picture() -> None:
    pixels = np.arange(64 * 128, dtype=np.uint32).reshape(128, 64) % 251
    laid = np.asarray(fitted(Image.fromarray(pixels.astype(np.uint8)), "crop", (64, 64)))
    assert np.array_equal(laid, pixels[32:96].astype(np.uint8))
