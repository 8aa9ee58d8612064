"""Inpaint area "only masked" (AUTOMATIC1111's ``inpaint_full_res``) and masked content.

*Only masked*: the part of the image around the mask (its bounding box grown by a padding, then
to the request's aspect ratio) is cut out, scaled to the request's width x height, inpainted
there, scaled back and pasted into the untouched full image. A small repair in a large picture
gets the model's whole resolution, and a model that draws its subjects in the middle of the
frame draws them inside the mask. The output keeps the init image's size.

*Masked content* decides what the masked part starts from below strength 1: the original
pixels, a ``fill`` of the colours around it, or, in latent space, noise or nothing (zeros).

*Paste-back*: the inpainted picture under the init image, kept where the mask is black and
blended where it is grey, as AUTOMATIC1111's overlay composites it (``pasted_back``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

from impasto.engine.types import CancelToken, GeneratedImage, GenerationParams, ProgressCallback

if TYPE_CHECKING:
    from impasto.engine.pipeline import StableDiffusion

log = logging.getLogger("impasto.engine")

Box = tuple[int, int, int, int]
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))
"""A1111's fill: (blur radius, times layered), coarse to fine; the last is the image itself."""


def _grow(low: int, high: int, size: int, limit: int) -> tuple[int, int]:
    """[low, high) grown about its centre to ``size``, shifted inside [0, limit), clamped."""
    low -= (size - (high - low)) // 2
    high = low + size
    if high > limit:
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, min(high - low, limit)
    return low, high


def blank_mask(mask: Image.Image) -> bool:
    """Whether ``mask`` repaints nothing (no pixel above black)."""
    return mask.convert("L").getbbox() is None


def crop_box(mask: Image.Image, padding: int, width: int, height: int) -> Box:
    """Where to inpaint: the mask's bounding box, ``padding`` pixels wider on every side, then
    grown to the aspect ratio of ``width`` x ``height`` (as far as the image allows).

    Every pixel the mask touches counts, a blurred edge included; an empty mask gives the
    whole image.
    """
    found = mask.convert("L").point(lambda v: 255 if v > 0 else 0).getbbox()
    if found is None:
        return (0, 0, mask.width, mask.height)
    x1, y1, x2, y2 = found
    x1, y1 = max(x1 - padding, 0), max(y1 - padding, 0)
    x2, y2 = min(x2 + padding, mask.width), min(y2 + padding, mask.height)
    ratio = width / height
    if (x2 - x1) / (y2 - y1) < ratio:
        x1, x2 = _grow(x1, x2, round((y2 - y1) * ratio), mask.width)
    else:
        y1, y2 = _grow(y1, y2, round((x2 - x1) / ratio), mask.height)
    return (x1, y1, x2, y2)


def kept_alpha(mask: Image.Image, doubled: bool = True) -> Image.Image:
    """How much of the init image an inpainting's paste-back keeps (255 all, 0 none), from the
    mask's grey levels as A1111's overlay reads them: the mask doubled (so from half grey up
    nothing is kept, and a blurred edge blends over its outer half), or as it is."""
    grey = np.asarray(mask.convert("L"), dtype=np.int32)
    repaint = np.clip(grey * 2, 0, 255) if doubled else grey
    return Image.fromarray((255 - repaint).astype(np.uint8), "L")


def kept_part(image: Image.Image, keep: Image.Image) -> Image.Image:
    """``image`` made transparent where ``keep`` is 0 (partly where grey), as A1111 makes its
    overlay and its fill's source: a premultiplied ``RGBa`` paste onto nothing."""
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=keep)
    return kept


def pasted_back(
    images: list[Image.Image], init: Image.Image, keep: Image.Image
) -> list[Image.Image]:
    """Each image under the init image's ``kept_part``, composited as A1111 applies its
    overlay (``alpha_composite``)."""
    layer = kept_part(init, keep).convert("RGBA")
    out = []
    for image in images:
        composed = image.convert("RGBA")
        composed.alpha_composite(layer)
        out.append(composed.convert("RGB"))
    return out


def run_masked_area(
    pipe: StableDiffusion,
    params: GenerationParams,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[GeneratedImage]:
    """Inpaint the crop around the mask at width x height; paste it into the full image. A
    blank mask has no crop: as A1111 ("Unable to perform 'Inpaint Only mask' because mask is
    blank, switch to img2img mode"), the whole picture runs as img2img at width x height."""
    assert params.init_image is not None and params.mask_image is not None
    full = params.init_image.convert("RGB")
    mask = params.mask_image.convert("L")
    size = (params.width, params.height)
    if blank_mask(mask):
        log.info("the mask is blank: an img2img of the whole picture instead of the masked area")
        # No mask at all, as A1111 drops it: an img2img of the whole picture.
        whole = replace(
            params,
            init_image=full.resize(size, Image.Resampling.LANCZOS),
            mask_image=None,
            inpaint_area="whole",
        )
        return list(pipe.generate(whole, progress, cancel))
    box = crop_box(mask, params.inpaint_padding, params.width, params.height)
    inner = replace(
        params,
        init_image=full.crop(box).resize(size, Image.Resampling.LANCZOS),
        mask_image=mask.crop(box).resize(size, Image.Resampling.LANCZOS),
        inpaint_area="whole",
        extra={**params.extra, "inpaint_overlay": False},
    )
    # The inpainted crop scaled back into a transparent full-size layer, under the init image
    # kept where the mask is black and blended where it is grey (the mask as it is: A1111's
    # overlay for "only masked"), so outside the mask the result is the init image exactly.
    keep = kept_alpha(mask, doubled=False)
    results = []
    for generated in pipe.generate(inner, progress, cancel):
        patch = generated.image.convert("RGB").resize(
            (box[2] - box[0], box[3] - box[1]), Image.Resampling.LANCZOS
        )
        layer = Image.new("RGB", full.size)
        layer.paste(patch, box[:2])
        [image] = pasted_back([layer], full, keep)
        results.append(replace(generated, image=image))
    return results


def fill_masked(image: Image.Image, mask: Image.Image) -> Image.Image:
    """``image`` with what ``mask`` repaints painted in the colours around it, as A1111's
    ``masking.fill`` paints it: the image made transparent where the mask is white (grey:
    partly), blurred from coarse to fine and layered, each blur over the last, so far from
    the kept pixels the coarse blurs' average colour shows and near them the finer ones'."""
    kept = kept_part(image, kept_alpha(mask, doubled=False))
    filled = Image.new("RGBA", image.size)
    for radius, repeats in FILL_PASSES:
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            filled.alpha_composite(blurred)
    return filled.convert("RGB")


def masked_start(
    init_latents: np.ndarray, mask: np.ndarray, noise: np.ndarray, content: str
) -> np.ndarray:
    """The init latents with the masked part replaced by ``noise`` or zeros (latent
    ``noise``/``nothing``); unchanged for ``original`` and ``fill`` (done in pixels)."""
    if content == "latent_noise":
        return (init_latents * (1.0 - mask) + noise * mask).astype(np.float32)
    if content == "latent_nothing":
        return (init_latents * (1.0 - mask)).astype(np.float32)
    return init_latents
