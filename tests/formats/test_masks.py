"""A1111's inpainting mask as it prepares it: read (alpha or grey, black and white) and blurred
along each axis exactly as ``cv2.GaussianBlur`` blurs 8-bit pictures (the oracle here)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from impasto.formats.masks import binary_mask_of, fixed_kernel, kernel_size, mask_blurred

RNG = np.random.default_rng(5)


def _blocks(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    for _ in range(3):
        y, x = RNG.integers(0, height), RNG.integers(0, width)
        mask[y : y + RNG.integers(3, 30), x : x + RNG.integers(3, 30)] = 255
    return mask


def _cv2(mask: np.ndarray, blur_x: int, blur_y: int) -> np.ndarray:
    """A1111's own calls (processing.py): across, then down."""
    if blur_x > 0:
        mask = cv2.GaussianBlur(mask, (kernel_size(blur_x), 1), blur_x)
    if blur_y > 0:
        mask = cv2.GaussianBlur(mask, (1, kernel_size(blur_y)), blur_y)
    return mask


@pytest.mark.parametrize(("blur_x", "blur_y"), [(4, 4), (1, 9), (12, 0), (0, 3), (64, 64)])
@pytest.mark.parametrize("shape", [(48, 80), (9, 7)])
def test_the_blur_is_opencvs_to_the_last_bit(
    blur_x: int, blur_y: int, shape: tuple[int, int]
) -> None:
    for mask in (_blocks(*shape), RNG.integers(0, 256, shape, dtype=np.uint8)):
        ours = np.asarray(mask_blurred(Image.fromarray(mask), blur_x, blur_y))
        assert np.array_equal(ours, _cv2(mask, blur_x, blur_y))


def test_the_kernel_is_256ths_summing_to_one() -> None:
    kernel = fixed_kernel(kernel_size(4), 4.0)
    assert kernel.sum() == 256 and len(kernel) == 21
    assert list(kernel) == list(kernel[::-1]) and kernel.argmax() == 10


def test_a_mask_is_read_from_its_alpha_else_its_grey() -> None:
    grey = np.array([[0, 100, 129, 255]], np.uint8)
    assert np.asarray(binary_mask_of(Image.fromarray(grey))).tolist() == [[0, 0, 255, 255]]
    assert np.asarray(binary_mask_of(Image.fromarray(grey), rounded=False)).tolist() == [
        [0, 100, 129, 255]
    ]
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere: the alpha channel decides
    rgba[..., 3] = [0, 200, 128, 255]
    assert np.asarray(binary_mask_of(Image.fromarray(rgba, "RGBA"))).tolist() == [[0, 255, 0, 255]]
    opaque = rgba.copy()
    opaque[..., 3] = 255  # no transparent part: the grey levels
    opaque[0, 0, :3] = 0
    assert np.asarray(binary_mask_of(Image.fromarray(opaque, "RGBA"))).tolist() == [
        [0, 255, 255, 255]
    ]
