"""Sizes the UNet cannot divide: generate on a slightly larger canvas, then crop.

An exported UNet halves the latents once per down block and doubles them back with a fixed
factor, so its latent sides must be multiples of 2**(blocks - 1): 64-pixel steps for SD 1.x.
The API promises any multiple of 8, so the pipeline pads to the next size the UNet takes
(init images by repeating their edge pixels, masks with "keep") and crops the result.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from PIL import Image

from impasto.engine.types import GenerationParams

VAE_FACTOR = 8


def size_multiple(unet_config: dict[str, Any]) -> int:
    """The pixel step the UNet accepts, from its config (4 down blocks -> 64)."""
    blocks = unet_config.get("down_block_types") or unet_config.get("block_out_channels") or ()
    return VAE_FACTOR * 2 ** max(0, len(blocks) - 1)


def padded_size(width: int, height: int, multiple: int) -> tuple[int, int]:
    """``width`` and ``height`` rounded up to ``multiple``."""
    return (-(-width // multiple) * multiple, -(-height // multiple) * multiple)


def _pad(image: Image.Image, size: tuple[int, int], fill: int | None) -> Image.Image:
    array = np.asarray(image)
    extra = [(0, size[1] - image.height), (0, size[0] - image.width)]
    extra += [(0, 0)] * (array.ndim - 2)
    if fill is None:
        padded = np.pad(array, extra, mode="edge")
    else:
        padded = np.pad(array, extra, mode="constant", constant_values=fill)
    return Image.fromarray(padded, mode=image.mode)


def pad_params(params: GenerationParams, size: tuple[int, int]) -> GenerationParams:
    """The same request on the larger canvas: init image edge-extended, mask 'keep' (black)."""
    init = _pad(params.init_image, size, None) if params.init_image is not None else None
    mask = _pad(params.mask_image, size, 0) if params.mask_image is not None else None
    return replace(params, width=size[0], height=size[1], init_image=init, mask_image=mask)
