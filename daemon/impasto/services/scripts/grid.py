"""Grids of images with A1111-style legends: column labels on top, row labels on the left.

Pure PIL, blocking: callers run these in a thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
FADED = (153, 153, 153)
PAD = 6


@dataclass(frozen=True)
class Label:
    """One line of a legend; inactive lines (a prompt matrix part left out) are struck through."""

    text: str
    active: bool = True


def cell_size(images: Sequence[Image.Image]) -> tuple[int, int]:
    """The size of a grid's cells: the widest and the tallest image (a Size axis mixes them)."""
    return max(image.width for image in images), max(image.height for image in images)


def image_grid(images: Sequence[Image.Image], rows: int) -> Image.Image:
    """``images`` left to right, top to bottom in ``rows`` rows, each at its cell's top left."""
    cols = math.ceil(len(images) / rows)
    width, height = cell_size(images)
    grid = Image.new("RGB", (cols * width, rows * height), BACKGROUND)
    for index, image in enumerate(images):
        grid.paste(image.convert("RGB"), (index % cols * width, index // cols * height))
    return grid


def blank(size: tuple[int, int]) -> Image.Image:
    """The black cell A1111 leaves where a job gave no image (cancelled)."""
    return Image.new("RGB", size)


def annotate(
    grid: Image.Image,
    cell: tuple[int, int],
    columns: Sequence[Sequence[Label]],
    rows: Sequence[Sequence[Label]],
    margin: int = 0,
) -> Image.Image:
    """``grid`` (cells of size ``cell``) with ``columns`` labels above, ``rows`` labels left.

    ``margin`` pixels separate the cells, as A1111's "Grid margins" do.
    """
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size_of(label: Label) -> tuple[int, int]:
        left, top, right, bottom = measure.textbbox((0, 0), label.text, font=font)
        return int(right - left), int(bottom - top)

    # Column labels wider than a cell wrap at spaces, as A1111's legends do.
    columns = [
        [part for label in labels for part in _wrap(label, cell[0] - 4, size_of)]
        for labels in columns
    ]
    line = max([size_of(Label("Ag"))[1]] + [size_of(lb)[1] for lbs in columns for lb in lbs]) + 2
    has_top = any(label.text for labels in columns for label in labels)
    has_left = any(label.text for labels in rows for label in labels)
    top = (max((len(labels) for labels in columns), default=0) * line + 2 * PAD) if has_top else 0
    left = (
        max((size_of(label)[0] for labels in rows for label in labels), default=0) + 2 * PAD
        if has_left
        else 0
    )
    width, height = cell
    n_cols, n_rows = max(1, grid.width // width), max(1, grid.height // height)
    out = Image.new(
        "RGB",
        (
            left + n_cols * width + (n_cols - 1) * margin,
            top + n_rows * height + (n_rows - 1) * margin,
        ),
        BACKGROUND,
    )
    for row in range(n_rows):
        for col in range(n_cols):
            box = (col * width, row * height, (col + 1) * width, (row + 1) * height)
            out.paste(
                grid.crop(box), (left + col * (width + margin), top + row * (height + margin))
            )
    draw = ImageDraw.Draw(out)
    for col, labels in enumerate(columns[:n_cols]):
        centre = left + col * (width + margin) + width // 2
        y = top - PAD - len(labels) * line
        for label in labels:
            _text(draw, font, label, (centre - size_of(label)[0] // 2, y), size_of(label))
            y += line
    for row, labels in enumerate(rows[:n_rows]):
        y = top + row * (height + margin) + height // 2 - len(labels) * line // 2
        for label in labels:
            _text(draw, font, label, (left - PAD - size_of(label)[0], y), size_of(label))
            y += line
    return out


def _wrap(label: Label, width: int, size_of: Callable[[Label], tuple[int, int]]) -> list[Label]:
    lines: list[str] = []
    for word in label.text.split(" "):
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and size_of(Label(candidate))[0] <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
    return [Label(text, label.active) for text in lines] or [label]


def _text(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    label: Label,
    at: tuple[int, int],
    size: tuple[int, int],
) -> None:
    colour = INK if label.active else FADED
    draw.text(at, label.text, font=font, fill=colour)
    if not label.active:
        middle = at[1] + size[1] // 2 + 1
        draw.line((at[0], middle, at[0] + size[0], middle), fill=colour)
