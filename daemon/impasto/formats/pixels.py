"""An image's pixels as the engine takes them: RGB, with what is transparent flattened."""

from __future__ import annotations

from PIL import Image

BACKGROUND = (255, 255, 255)
"""What shows through an init image's transparent parts: white, as AUTOMATIC1111 flattens
them (its img2img_background_color default)."""


def flattened(image: Image.Image, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """``image`` as RGB, its transparent parts over ``background`` (the colour a transparent
    pixel happens to store, often black, is no part of the picture)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")
