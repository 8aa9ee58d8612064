"""Impasto plugin: hide a detectable text in each output's low bits, or draw it visibly."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from impasto.plugins import PluginContext, PostprocessResult, hookimpl

__version__ = "0.1.0"

DEFAULT_ENABLED = False
SETTINGS = {
    "mode": "invisible (hidden in the blue channel's low bit) or visible (drawn in a corner).",
    "text": "The watermark text, at most 255 bytes of UTF-8 (default impasto).",
}
MAGIC = b"IMPW"


def _bits(payload: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(payload, dtype=np.uint8))


def embed(image: Image.Image, text: str) -> Image.Image:
    """``image`` with MAGIC, a length byte and ``text`` in the blue channel's lowest bits."""
    data = text.encode("utf-8")
    if len(data) > 255:
        raise ValueError("watermark text is longer than 255 bytes")
    bits = _bits(MAGIC + bytes([len(data)]) + data)
    pixels = np.array(image.convert("RGB"))
    blue = pixels[..., 2].reshape(-1)
    if bits.size > blue.size:
        raise ValueError(f"a {image.width}x{image.height} image is too small for the watermark")
    blue[: bits.size] = (blue[: bits.size] & 0xFE) | bits
    pixels[..., 2] = blue.reshape(pixels.shape[:2])
    return Image.fromarray(pixels, "RGB")


def detect(image: Image.Image) -> str | None:
    """The invisible watermark's text, or None when the image carries none."""
    blue = np.asarray(image.convert("RGB"))[..., 2].reshape(-1) & 1
    header = len(MAGIC) + 1
    if blue.size < header * 8:
        return None
    head = np.packbits(blue[: header * 8]).tobytes()
    if head[: len(MAGIC)] != MAGIC:
        return None
    end = (header + head[-1]) * 8
    if blue.size < end:
        return None
    return np.packbits(blue[header * 8 : end]).tobytes().decode("utf-8", errors="replace")


def draw_visible(image: Image.Image, text: str) -> Image.Image:
    """``image`` with ``text`` drawn, white on a dark box, in its bottom-right corner."""
    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    left, top, right, bottom = draw.textbbox((0, 0), text)
    x = max(0, marked.width - (right - left) - 4)
    y = max(0, marked.height - (bottom - top) - 4)
    draw.rectangle((x - 2, y - 2, marked.width, marked.height), fill=(0, 0, 0))
    draw.text((x, y - top), text, fill=(255, 255, 255))
    return marked


@hookimpl(trylast=True)
def postprocess_result(
    result: PostprocessResult, image: Image.Image, context: PluginContext
) -> Image.Image:
    """Mark the image after the other post-processors (an upscale would erase the bits)."""
    mode = str(context.config.get("mode", "invisible"))
    text = str(context.config.get("text", "impasto"))
    if mode == "visible":
        marked = draw_visible(image, text)
    elif mode == "invisible":
        marked = embed(image, text)
    else:
        raise ValueError(f"[plugins.watermark] mode must be invisible or visible, not {mode!r}")
    result.text["watermark"] = mode
    return marked


def main(argv: list[str] | None = None) -> int:
    """``python -m impasto_watermark IMAGE...``: print each image's invisible watermark."""
    import sys

    paths = sys.argv[1:] if argv is None else argv
    found = 0
    for path in paths:
        with Image.open(path) as image:
            text = detect(image)
        print(f"{path}: {text if text is not None else '(no watermark)'}")
        found += text is not None
    return 0 if found == len(paths) else 1
