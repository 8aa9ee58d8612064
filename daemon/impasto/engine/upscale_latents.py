"""torch's ``interpolate`` on latents, in numpy: AUTOMATIC1111's latent upscale modes.

Each mode is separable: one weight matrix per axis, ``out = Wh @ x @ Ww.T``. Coordinates follow
``align_corners=False``; the antialiased modes use torch's antialias kernels (bicubic with
a = -0.5, weights renormalised over the taps inside the image).
"""

from __future__ import annotations

import math

import numpy as np

LATENT_MODES: dict[str, tuple[str, bool]] = {
    "latent": ("bilinear", False),
    "latent-antialiased": ("bilinear", True),
    "latent-bicubic": ("bicubic", False),
    "latent-bicubic-antialiased": ("bicubic", True),
    "latent-nearest": ("nearest", False),
    "latent-nearest-exact": ("nearest-exact", False),
}
"""Upscaler id -> (torch interpolate mode, antialias), as A1111's ``latent_upscale_modes``."""
IMAGE_UPSCALERS = ("lanczos", "nearest")
"""Upscalers of the decoded image (PIL filters of that name)."""
UPSCALERS = (*LATENT_MODES, *IMAGE_UPSCALERS)
"""Every hires fix upscaler id."""
UPSCALER_LABELS = {
    "latent": "Latent",
    "latent-antialiased": "Latent (antialiased)",
    "latent-bicubic": "Latent (bicubic)",
    "latent-bicubic-antialiased": "Latent (bicubic antialiased)",
    "latent-nearest": "Latent (nearest)",
    "latent-nearest-exact": "Latent (nearest-exact)",
    "lanczos": "Lanczos",
    "nearest": "Nearest",
}
"""Upscaler id -> AUTOMATIC1111's name (its API's ``hr_upscaler``, PNG ``Hires upscaler``)."""


def _cubic(x: float, a: float) -> float:
    x = abs(x)
    if x <= 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def axis_weights(size_in: int, size_out: int, mode: str, antialias: bool) -> np.ndarray:
    """[size_out, size_in]: the weights of one axis."""
    scale = size_in / size_out
    weights = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        if mode in ("nearest", "nearest-exact"):
            offset = 0.5 if mode == "nearest-exact" else 0.0
            weights[i, min(math.floor((i + offset) * scale), size_in - 1)] = 1.0
        elif antialias:
            # torch's antialias path: a filter of support (1 or 2) * max(scale, 1) around the
            # centre, normalised over the taps inside the image.
            support = (1.0 if mode == "bilinear" else 2.0) * max(scale, 1.0)
            center = scale * (i + 0.5)
            lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
            inv = 1.0 / max(scale, 1.0)
            for j in range(lo, hi):
                x = (j - center + 0.5) * inv
                weights[i, j] = max(0.0, 1 - abs(x)) if mode == "bilinear" else _cubic(x, -0.5)
            weights[i] /= weights[i].sum()
        elif mode == "bilinear":
            src = max((i + 0.5) * scale - 0.5, 0.0)
            low = min(math.floor(src), size_in - 1)
            high = min(low + 1, size_in - 1)
            w = src - low
            weights[i, low] += 1 - w
            weights[i, high] += w
        else:  # bicubic, a = -0.75, borders replicated
            src = (i + 0.5) * scale - 0.5
            base = math.floor(src)
            t = src - base
            for k in range(-1, 3):
                j = min(max(base + k, 0), size_in - 1)
                weights[i, j] += _cubic(k - t, -0.75)
    return weights


def upscale_latents(latents: np.ndarray, height: int, width: int, upscaler: str) -> np.ndarray:
    """[B, C, h, w] latents resized to [B, C, height, width] by an A1111 latent mode."""
    mode, antialias = LATENT_MODES[upscaler]
    rows = axis_weights(latents.shape[2], height, mode, antialias)
    cols = axis_weights(latents.shape[3], width, mode, antialias)
    out = np.einsum("hy,bcyx,wx->bchw", rows, latents.astype(np.float64), cols)
    return out.astype(np.float32)
