"""AUTOMATIC1111's img2img colour correction: a result's colours matched to its init image's.

A1111 ("Apply color correction to img2img results to match original colors") takes both
pictures to OpenCV's 8-bit CIELAB (L x 255 / 100, a + 128, b + 128), matches each channel's
histogram of the result to the init image's (scikit-image's ``match_histograms``, whose float
answer is stored back into 8 bits, so truncated), converts back to RGB, and keeps the result's
own luminosity: blendmodes' luminosity blend (the W3C compositing spec's ``SetLum`` with
Rec. 601 weights) of the matched colours under the result, truncated to 8 bits.

OpenCV's 8-bit conversions are fixed-point arithmetic over tables (``color_lab.cpp``:
``RGB2Lab_b`` and ``Lab2RGBinteger``); the tables and the arithmetic below are theirs, so the
8-bit values are OpenCV's for every colour.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image

from impasto.engine.types import GenerationParams

_BASE = 1 << 14  # Lab2RGBinteger's fixed point
_MIN_AB = -8145
_D65 = np.array([0.950456, 1.0, 1.088754])
_RGB_TO_XYZ = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = np.array(
    [
        [3.240479, -1.53715, -0.498535],
        [-0.969256, 1.875991, 0.041556],
        [0.055648, -0.204043, 1.057311],
    ]
)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, x * 12.92, x ** (1 / 2.4) * 1.055 - 0.055)


def _c_divide(a: np.ndarray, b: int) -> np.ndarray:
    """C's integer division, which truncates toward zero."""
    return np.sign(a) * (np.abs(a) // b)


@functools.cache
def _forward_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB2Lab_b's: the gamma table (x 8), the cube-root table (x 2^15, in float32 as
    OpenCV's softfloat builds it) and the XYZ matrix over the white point (x 2^12)."""
    gamma = np.rint(255 * 8 * _srgb_to_linear(np.arange(256) / 255.0)).astype(np.int64)
    f32 = np.float32
    x = (f32(1) / f32(255 * 8)) * np.arange(256 * 3 // 2 * 8, dtype=np.float32)
    threshold, scale, bias = f32(216) / f32(24389), f32(841) / f32(108), f32(16) / f32(116)
    cube_root = np.where(x < threshold, x * scale + bias, np.cbrt(x).astype(np.float32))
    cbrt_table = np.rint(f32(1 << 15) * cube_root).astype(np.int64)
    matrix = np.rint((1 << 12) * _RGB_TO_XYZ / _D65[:, None]).astype(np.int64)
    return gamma, cbrt_table, matrix


@functools.cache
def _inverse_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lab2RGBinteger's: L -> (y, f(y)), a or b -> x or z, the RGB matrix times the white
    point (x 2^12) and the inverse gamma table (4096 entries)."""
    lightness = np.arange(256)
    fy = lightness * 100 * _BASE / (255 * 116) + 16 * _BASE / 116
    dark = lightness <= 20
    y = np.where(
        dark, np.rint(lightness * _BASE * 20 * 9 / (17 * 29**3)), np.rint(fy**3 / _BASE**2)
    )
    ify = np.where(dark, np.rint(_BASE * (16 / 116 + lightness * 5 / (3 * 17 * 29))), np.rint(fy))
    i = np.arange(_MIN_AB, _BASE * 9 // 4 + _MIN_AB, dtype=np.int64)
    linear_part = _c_divide(i * 108, 841) - _BASE * 16 // 116 * 108 // 841
    xz = np.where(i <= 3390, linear_part, (i * i // _BASE) * i // _BASE)
    matrix = np.rint((1 << 12) * _XYZ_TO_RGB * _D65[None, :]).astype(np.int64)
    inverse_gamma = np.rint(255 * _linear_to_srgb(np.arange(4096) / 4096)).astype(np.int64)
    return y.astype(np.int64), ify.astype(np.int64), xz, matrix, inverse_gamma


def rgb_to_lab8(rgb: np.ndarray) -> np.ndarray:
    """[..., 3] uint8 sRGB to OpenCV's 8-bit Lab (``cv2.COLOR_RGB2LAB``)."""
    gamma, cbrt_table, matrix = _forward_tables()  # built on the first correction
    linear = gamma[rgb.astype(np.int64)]
    f = cbrt_table[(linear @ matrix.T + (1 << 11)) >> 12]
    half = 1 << 14
    lightness = (296 * f[..., 1] - 1336934 + half) >> 15
    a = (500 * (f[..., 0] - f[..., 1]) + (128 << 15) + half) >> 15
    b = (200 * (f[..., 1] - f[..., 2]) + (128 << 15) + half) >> 15
    return np.clip(np.stack([lightness, a, b], -1), 0, 255).astype(np.uint8)


def lab8_to_rgb(lab: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit Lab back to [..., 3] uint8 sRGB (``cv2.COLOR_LAB2RGB``)."""
    y_table, ify_table, xz, matrix, inverse_gamma = _inverse_tables()
    values = lab.astype(np.int64)
    y, ify = y_table[values[..., 0]], ify_table[values[..., 0]]
    a_part = ((5 * values[..., 1] * 53687 + (1 << 7)) >> 13) - 128 * _BASE // 500
    b_part = ((values[..., 2] * 41943 + (1 << 4)) >> 9) - 128 * _BASE // 200 + 1
    x, z = xz[ify + a_part - _MIN_AB], xz[ify - b_part - _MIN_AB]
    rgb = (np.stack([x, y, z], -1) @ matrix.T + (1 << 13)) >> 14
    return inverse_gamma[np.clip(rgb, 0, 4095)].astype(np.uint8)


def matched_channel(source: np.ndarray, template: np.ndarray) -> np.ndarray:
    """uint8 ``source`` with its cumulative histogram matched to ``template``'s, as
    scikit-image matches 8-bit images (quantiles interpolated, the answer truncated)."""
    counts = np.bincount(source.reshape(-1), minlength=256)
    template_counts = np.bincount(template.reshape(-1), minlength=256)
    values = np.nonzero(template_counts)[0]
    quantiles = np.cumsum(counts) / source.size
    template_quantiles = np.cumsum(template_counts[values]) / template.size
    lookup = np.interp(quantiles, template_quantiles, values)
    return lookup.astype(np.uint8)[source]


def luminosity_of(colours: np.ndarray) -> np.ndarray:
    """Rec. 601 luminosity of [..., 3] colours, summed in blendmodes' order."""
    return colours[..., 0] * 0.299 + colours[..., 1] * 0.587 + colours[..., 2] * 0.114


def with_luminosity(colours: np.ndarray, luminosity: np.ndarray) -> np.ndarray:
    """[..., 3] colours in 0..1 moved to ``luminosity``, then pulled back into 0..1 toward
    their own grey (the compositing spec's SetLum and ClipColor)."""
    moved = colours + (luminosity - luminosity_of(colours))[..., None]
    lum = luminosity_of(moved)[..., None]
    low = moved.min(axis=-1, keepdims=True)
    high = moved.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        raised = lum + (moved - lum) * lum / (lum - low)
        lowered = lum + (moved - lum) * (1 - lum) / (high - lum)
    moved = np.where(low < 0, raised, moved)
    return np.where(high > 1, lowered, moved)


def color_corrected(image: Image.Image, reference: Image.Image) -> Image.Image:
    """``image`` with the colours of ``reference`` (any size) and its own luminosity."""
    pixels = np.asarray(image.convert("RGB"))
    lab = rgb_to_lab8(pixels)
    target = rgb_to_lab8(np.asarray(reference.convert("RGB")))
    matched = np.stack([matched_channel(lab[..., i], target[..., i]) for i in range(3)], -1)
    colours = lab8_to_rgb(matched).astype(np.float64) / 255
    blended = with_luminosity(colours, luminosity_of(pixels / 255))
    return Image.fromarray((np.clip(blended, 0.0, 1.0) * 255).astype(np.uint8), "RGB")


def reference(params: GenerationParams) -> Image.Image | None:
    """The picture a run's colours are corrected to, with ``color_correction``: its colour
    reference, else its init image."""
    if not params.color_correction:
        return None
    return params.color_reference or params.init_image
