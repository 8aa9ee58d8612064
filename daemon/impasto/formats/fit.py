"""How an init image (and its mask) is laid out at width x height: AUTOMATIC1111's img2img
resize modes, stretch, crop and resize, resize and fill."""

from __future__ import annotations

from PIL import Image

LANCZOS = Image.Resampling.LANCZOS
EDGE = Image.Resampling.BICUBIC
"""How the fill is sampled: a box of no height (or width) on the picture's edge, stretched
across the side, with Pillow's default filter, as A1111 calls it."""


MAX_SCALED = 8192 * 8192
"""The most pixels a picture is scaled to before it is cropped (a 20000x8 picture cropped to
2048x2048 would be 5120000x2048 first)."""


def fitted(image: Image.Image, mode: str, size: tuple[int, int]) -> Image.Image:
    """``image`` at ``size`` as A1111's resize_image lays it out (its "Just resize", "Crop and
    resize", "Resize and fill"; ``wire.ResizeMode`` lists the names): ``stretch`` resizes it;
    ``crop`` scales it to cover and keeps the centre; ``fill`` scales it to fit, centres it and
    fills each side left over with the picture's edge row or column sampled and stretched
    across it (not black). ValueError when a crop would scale it past ``MAX_SCALED``."""
    width, height = size
    if mode == "stretch" or image.size == size:
        return image.resize(size, LANCZOS)
    ratio, source_ratio = width / height, image.width / image.height
    crop = mode == "crop"
    by_width = ratio > source_ratio if crop else ratio < source_ratio
    by_height = ratio <= source_ratio if crop else ratio >= source_ratio
    # At least a pixel: a 600x4 picture filled into 64x64 would scale to 64x0.
    scaled_w = width if by_width else max(1, image.width * height // image.height)
    scaled_h = height if by_height else max(1, image.height * width // image.width)
    if scaled_w * scaled_h > MAX_SCALED:
        raise ValueError(
            f"a {image.width}x{image.height} picture cropped to {width}x{height} is first "
            f"scaled to {scaled_w}x{scaled_h}, over {MAX_SCALED} pixels: crop it closer to "
            "that shape first, or fill or stretch it"
        )
    scaled = image.resize((scaled_w, scaled_h), LANCZOS)
    canvas = Image.new(image.mode, size)
    top, left = height // 2 - scaled_h // 2, width // 2 - scaled_w // 2
    canvas.paste(scaled, (left, top))
    if not crop and top > 0:
        for box, at in (((0, 0, width, 0), 0), ((0, scaled_h, width, scaled_h), top + scaled_h)):
            canvas.paste(scaled.resize((width, top), EDGE, box), (0, at))
    elif not crop and left > 0:
        for box, at in (((0, 0, 0, height), 0), ((scaled_w, 0, scaled_w, height), left + scaled_w)):
            canvas.paste(scaled.resize((left, height), EDGE, box), (at, 0))
    return canvas
