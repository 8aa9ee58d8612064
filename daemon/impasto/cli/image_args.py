"""`impasto generate`'s flags for a run from an image: the init image and mask, how it is laid
out, how much it changes, and how inpainting goes."""

from __future__ import annotations

import argparse
from pathlib import Path

from impasto.cli.common import finite_float
from impasto.wire import LIMITS


def span(field: str) -> str:
    """A field's allowed range as help text, read from the request schema ("1..150")."""
    limit = LIMITS[field]
    low, high = (f"{v:g}" for v in (limit.minimum or 0, limit.maximum or 0))
    step = f"multiple of {limit.multiple_of}, " if limit.multiple_of else ""
    return f"{step}{low}..{high}"


def add_image_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of a run from an image (img2img, inpainting)."""
    parser.add_argument("--init-image", type=Path, metavar="PATH", help="image to start from")
    parser.add_argument("--mask", type=Path, metavar="PATH", help="inpaint mask, white = repaint")
    parser.add_argument(
        "--strength",
        type=finite_float,
        help=f"how much to change the init image, {span('strength')}",
    )
    parser.add_argument(
        "--resize-mode",
        choices=LIMITS["resize_mode"].choices,
        help="how an init image of another shape is laid out at --width x --height: stretch "
        "(default), crop (scaled to cover, the centre kept), fill (scaled to fit, the sides "
        "filled with its edges stretched) or latent (encoded at its own size, its latents "
        "resized; img2img without a mask); A1111's resize modes",
    )
    parser.add_argument(
        "--noise-multiplier",
        type=finite_float,
        metavar="F",
        help="the noise added to the init image, times this "
        f"({span('noise_multiplier')}; default 1; A1111's noise multiplier for img2img)",
    )
    parser.add_argument(
        "--color-correction",
        action="store_true",
        default=None,
        help="match the result's colours to the init image's, keeping its own luminosity "
        "(A1111's color correction for img2img)",
    )
    parser.add_argument(
        "--color-reference",
        type=Path,
        metavar="PATH",
        help="with --color-correction: the picture whose colours the result takes instead",
    )
    parser.add_argument(
        "--extra-noise",
        type=finite_float,
        metavar="F",
        help="img2img and the hires pass: the start's noise added once more, times this "
        f"({span('extra_noise')}; default 0; A1111's extra noise)",
    )
    parser.add_argument(
        "--inpaint-mask-weight",
        type=finite_float,
        metavar="F",
        help="inpainting models: how much of what they repaint they do not see "
        f"({span('inpaint_mask_weight')}; default 1; A1111's conditioning mask strength)",
    )
    parser.add_argument(
        "--img2img-steps",
        choices=LIMITS["img2img_steps"].choices,
        help="how a run from an image or a hires pass counts its steps: strength (default; "
        "the last steps x strength), a1111 (one more, A1111's img2img) or exact (steps of "
        "them, A1111's hires pass and img2img_fix_steps, ComfyUI's denoise)",
    )
    parser.add_argument(
        "--inpaint-area",
        choices=LIMITS["inpaint_area"].choices,
        help="whole: inpaint at the picture's size (default); masked: only the part around the "
        "mask, at --width x --height, pasted back into the full-size picture",
    )
    parser.add_argument(
        "--inpaint-padding",
        type=int,
        metavar="PX",
        help=f"context around the mask for --inpaint-area masked ({span('inpaint_padding')}; "
        "default 32)",
    )
    parser.add_argument(
        "--masked-content",
        choices=LIMITS["masked_content"].choices,
        help="what the masked part starts from below strength 1 (default original)",
    )
