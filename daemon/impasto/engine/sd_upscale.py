"""AUTOMATIC1111's "SD upscale" script: upscale the init image, img2img it in overlapping tiles of
the request's width x height, and blend the tiles back together.

The tiling is A1111's (``impasto.engine.tiles``). Tile ``i`` (row by row) is denoised with seed
``seed + i``, as the script does with batch size 1.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from PIL import Image

from impasto.engine.image_upscale import NONE, ModelUpscaler, upscale_image
from impasto.engine.noise import offset_seed, resolve_seed
from impasto.engine.tiles import combine_grid, split_grid
from impasto.engine.types import (
    CancelToken,
    GeneratedImage,
    GenerationParams,
    InvalidRequestError,
    Progress,
    ProgressCallback,
)

if TYPE_CHECKING:
    from impasto.engine.pipeline import StableDiffusion


def check_covers_a_tile(size: tuple[int, int], tile: tuple[int, int]) -> None:
    """An InvalidRequestError on ``sd_upscale.scale`` when the upscaled image is narrower or
    shorter than a tile (SD upscale cuts it into tiles of the run's size)."""
    short = [
        what
        for what, side, tile_side in zip(("narrower", "shorter"), size, tile, strict=True)
        if side < tile_side
    ]
    if short:
        raise InvalidRequestError(
            "sd_upscale.scale",
            f"the upscaled image ({size[0]}x{size[1]}) is {' and '.join(short)} than a tile "
            f"({tile[0]}x{tile[1]}); raise the scale or lower width and height",
        )


def upscaled_source(params: GenerationParams) -> Image.Image:
    """The init image after the script's upscaler (unchanged with "none")."""
    spec = params.sd_upscale
    assert spec is not None and params.init_image is not None
    if spec.upscaler == NONE:
        return params.init_image.convert("RGB")
    upscaler = ModelUpscaler(spec.upscaler_model) if spec.upscaler_model else spec.upscaler
    return upscale_image(params.init_image.convert("RGB"), upscaler, spec.scale)


def run_sd_upscale(
    pipe: StableDiffusion,
    params: GenerationParams,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[GeneratedImage]:
    """One image: the upscaled init image with every tile denoised by img2img."""
    spec = params.sd_upscale
    assert spec is not None
    if params.init_image is None:
        raise InvalidRequestError("init_image", "SD upscale needs the image to upscale")
    if not 0 <= spec.overlap < min(params.width, params.height):
        raise InvalidRequestError(
            "sd_upscale.overlap", f"must be from 0 to less than the tile's sides ({spec.overlap})"
        )
    seed = resolve_seed(params.seed)
    source = upscaled_source(params)
    check_covers_a_tile(source.size, (params.width, params.height))
    grid = split_grid(source, params.width, params.height, spec.overlap)
    count = sum(len(row.tiles) for row in grid.rows)
    index = 0
    warnings: set[str] = set()
    for row in grid.rows:
        for position, (x, tile) in enumerate(row.tiles):
            if cancel is not None:
                cancel.raise_if_cancelled()
            done = index

            def report(p: Progress, done: int = done) -> None:
                if progress is not None:
                    progress(Progress(done * p.total + p.step, count * p.total, p.preview))

            tile_params = replace(
                params,
                init_image=tile,
                seed=offset_seed(seed, index),
                batch_size=1,
                sd_upscale=None,
            )
            (result,) = pipe.generate(tile_params, report, cancel)
            warnings.update(result.warnings)
            row.tiles[position] = (x, result.image)
            index += 1
    image = combine_grid(grid)
    return [GeneratedImage(image=image, seed=seed, warnings=tuple(sorted(warnings)))]
