"""AUTOMATIC1111's image tiling (``split_grid``/``combine_grid``): tiles spread evenly so the
last one ends at the edge, overlapping by at least ``overlap`` pixels, blended back with a linear
ramp (left to right within a row, then row over row). SD upscale and tiled super-resolution
runs use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass
class TileRow:
    """One row of tiles: its top, and each tile's left edge with the tile image."""

    y: int
    tiles: list[tuple[int, Image.Image]]


@dataclass
class Grid:
    rows: list[TileRow]
    tile_w: int
    tile_h: int
    width: int
    height: int
    overlap: int


def split_grid(image: Image.Image, tile_w: int, tile_h: int, overlap: int) -> Grid:
    """The image cut into tiles that overlap by at least ``overlap`` pixels."""
    w, h = image.size
    cols = math.ceil((w - overlap) / (tile_w - overlap))
    rows = math.ceil((h - overlap) / (tile_h - overlap))
    dx = (w - tile_w) / (cols - 1) if cols > 1 else 0
    dy = (h - tile_h) / (rows - 1) if rows > 1 else 0
    grid = Grid([], tile_w, tile_h, w, h, overlap)
    for row in range(rows):
        y = min(int(row * dy), h - tile_h)
        tiles = []
        for col in range(cols):
            x = min(int(col * dx), w - tile_w)
            tiles.append((x, image.crop((x, y, x + tile_w, y + tile_h))))
        grid.rows.append(TileRow(y, tiles))
    return grid


def _ramp(length: int, across: int, horizontal: bool) -> Image.Image:
    values = (np.arange(length, dtype=np.float32) * 255 / length).astype(np.uint8)
    mask = np.tile(values, (across, 1)) if horizontal else np.tile(values[:, None], (1, across))
    return Image.fromarray(mask, "L")


def combine_grid(grid: Grid) -> Image.Image:
    """The tiles pasted back, each overlap blended linearly into what is already there."""
    out = Image.new("RGB", (grid.width, grid.height))
    overlap = grid.overlap
    mask_w = _ramp(overlap, grid.tile_h, True) if overlap else None
    mask_h = _ramp(overlap, grid.width, False) if overlap else None
    for row in grid.rows:
        line = Image.new("RGB", (grid.width, grid.tile_h))
        for x, tile in row.tiles:
            if x == 0 or mask_w is None:
                line.paste(tile, (x, 0))
                continue
            line.paste(tile.crop((0, 0, overlap, grid.tile_h)), (x, 0), mask=mask_w)
            line.paste(tile.crop((overlap, 0, grid.tile_w, grid.tile_h)), (x + overlap, 0))
        if row.y == 0 or mask_h is None:
            out.paste(line, (0, row.y))
            continue
        out.paste(line.crop((0, 0, grid.width, overlap)), (0, row.y), mask=mask_h)
        out.paste(line.crop((0, overlap, grid.width, grid.tile_h)), (0, row.y + overlap))
    return out
