"""AUTOMATIC1111's inpainting mask: read from a picture, then blurred as OpenCV blurs it.

A1111 reads a mask from its alpha channel where it has a transparent part, else from its grey
levels, and (its ``mask_round``, on by default) makes it black and white, white above 128.
It then blurs it with ``cv2.GaussianBlur`` once across (a kernel of width 2 x int(2.5 x
blur + 0.5) + 1, one row high) and once down, each with its own blur (``mask_blur_x``,
``mask_blur_y``). For 8-bit pictures OpenCV is bit-exact in fixed point: its Gaussian weights
are rounded to 256ths with the rounding error carried from the tails toward the centre
(``getGaussianKernelFixedPoint_ED``), the sum is rounded half up, and the edges reflect
without repeating the border pixel (``BORDER_REFLECT_101``). This is that arithmetic.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_ONE = 256  # OpenCV's 8-bit Gaussian weights are 256ths


def binary_mask_of(image: Image.Image, rounded: bool = True) -> Image.Image:
    """The mask A1111 reads from ``image`` (its ``create_binary_mask``): the alpha channel of
    a picture with a transparent part, else the grey levels; white above 128, else black,
    when ``rounded``."""
    if image.mode == "RGBA" and image.getextrema()[-1] != (255, 255):
        grey = image.getchannel("A")
    else:
        grey = image.convert("L")
    return grey.point(lambda v: 255 if v > 128 else 0) if rounded else grey


def kernel_size(blur: int) -> int:
    """A1111's kernel length for a blur (its standard deviation) of ``blur`` pixels."""
    return 2 * int(2.5 * blur + 0.5) + 1


def fixed_kernel(size: int, sigma: float) -> np.ndarray:
    """OpenCV's Gaussian weights of an odd ``size`` in 256ths, summing to 256."""
    half = (size - 1) // 2
    offsets = np.arange(1 - size, 1 - size + 2 * half, 2, dtype=np.float64)  # 2 x distance
    tails = np.exp(offsets * offsets * (-0.125 / (sigma * sigma)))
    weights = tails / (tails.sum() * 2 + 1.0)
    kernel = np.zeros(size, np.int64)
    carried = 0.0
    for i in range(half):
        wanted = weights[i] * _ONE + carried
        kernel[i] = kernel[size - 1 - i] = round(wanted)  # cvRound: half to even, as round()
        carried = wanted - kernel[i]
    kernel[half] = _ONE - 2 * int(kernel[:half].sum())
    return kernel


def _along(pixels: np.ndarray, blur: int, axis: int) -> np.ndarray:
    size = kernel_size(blur)
    kernel, radius = fixed_kernel(size, float(blur)), size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(pixels.astype(np.int64), pad, mode="reflect")
    total = np.zeros(pixels.shape, np.int64)
    for i, weight in enumerate(kernel):
        window = [slice(None), slice(None)]
        window[axis] = slice(i, i + pixels.shape[axis])
        total += weight * padded[tuple(window)]
    return ((total + _ONE // 2) >> 8).astype(np.uint8)


def mask_blurred(mask: Image.Image, blur_x: int, blur_y: int) -> Image.Image:
    """``mask`` (as 8-bit grey) blurred across by ``blur_x`` and down by ``blur_y`` pixels,
    as A1111 blurs it (0: not along that axis)."""
    pixels = np.asarray(mask.convert("L"))
    if blur_x > 0:
        pixels = _along(pixels, blur_x, axis=1)
    if blur_y > 0:
        pixels = _along(pixels, blur_y, axis=0)
    return Image.fromarray(pixels, "L")
