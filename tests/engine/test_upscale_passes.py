"""Hires fix through an ONNX super-resolution model, and A1111's SD upscale, each against the
same steps composed by hand."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impasto.engine import Progress, StableDiffusion
from impasto.engine.hires import run_hires, second_pass
from impasto.engine.noise import BatchNoise
from impasto.engine.pipelines.img2img import encode_init_image
from impasto.engine.tiles import combine_grid, split_grid
from impasto.engine.types import HiresParams, SdUpscaleParams
from tests.sr_model import max_diff, pattern, reference_sr, write_sr_model

from .conftest import small


@pytest.fixture(scope="module")
def sr2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sr_model(tmp_path_factory.mktemp("sr") / "tiny-sr.onnx", scale=2)


def test_hires_second_pass_starts_from_the_sr_upscaled_image(
    pipe: StableDiffusion, sr2: Path
) -> None:
    hires = HiresParams(
        width=128, height=96, upscaler="tiny-sr", upscaler_model=sr2, steps=4, strength=0.5
    )
    params = small(sampler="euler", steps=4, seed=7, hires=hires)
    ours = run_hires(pipe, params, None, None, None).latents

    # By hand: the first pass's image, the model (numpy reference), Lanczos to the size (A1111
    # resizes a 2x result of 128x128 to 128x96), then the second pass on the seed's noise
    # again (A1111's new ImageRNG for the hires pass).
    first_image = pipe.generate(replace(params, hires=None))[0].image
    upscaled = reference_sr(first_image, sr2).resize((128, 96), Image.Resampling.LANCZOS)
    init = encode_init_image(pipe.vae_for(params), upscaled, 1)
    second = second_pass(params, hires, 7)
    expected = pipe.denoise(second, init_latents=init, noise=BatchNoise(7, 1))
    np.testing.assert_allclose(ours, expected.latents, rtol=1e-4, atol=1e-4)

    # Lanczos instead of the model gives a different second pass: the model's output is used.
    lanczos = run_hires(
        pipe,
        replace(params, hires=replace(hires, upscaler="lanczos", upscaler_model=None)),
        None,
        None,
        None,
    ).latents
    assert not np.allclose(ours, lanczos, atol=1e-3)


def test_unknown_hires_model_is_named(pipe: StableDiffusion) -> None:
    from impasto.engine import InvalidRequestError

    with pytest.raises(InvalidRequestError) as err:
        pipe.generate(small(hires=HiresParams(width=128, height=128, upscaler="tiny-sr")))
    assert err.value.field == "hires.upscaler"


def reference_combine(
    tiles: list[tuple[int, int, np.ndarray]],
    size: tuple[int, int],
    tile: tuple[int, int],
    overlap: int,
) -> np.ndarray:
    """A1111's combine_grid in numpy: rows blended left to right, then rows top to bottom."""
    width, height = size
    ramp = np.floor(np.arange(overlap) * 255 / overlap) / 255 if overlap else np.zeros(0)
    out = np.zeros((height, width, 3))
    rows: dict[int, list[tuple[int, np.ndarray]]] = {}
    for x, y, pixels in tiles:
        rows.setdefault(y, []).append((x, pixels.astype(float)))
    for y, row in rows.items():
        line = np.zeros((tile[1], width, 3))
        for x, pixels in row:
            if x == 0:
                line[:, : tile[0]] = pixels
                continue
            a = ramp[None, :, None]
            line[:, x : x + overlap] = line[:, x : x + overlap] * (1 - a) + pixels[:, :overlap] * a
            line[:, x + overlap : x + tile[0]] = pixels[:, overlap:]
        if y == 0:
            out[: tile[1]] = line
            continue
        a = ramp[:, None, None]
        out[y : y + overlap] = out[y : y + overlap] * (1 - a) + line[:overlap] * a
        out[y + overlap : y + tile[1]] = line[overlap:]
    return out


@pytest.mark.parametrize(
    ("size", "tile", "overlap"), [((160, 112), (64, 64), 16), ((128, 64), (64, 64), 0)]
)
def test_split_and_combine_are_a1111s(
    size: tuple[int, int], tile: tuple[int, int], overlap: int
) -> None:
    image = pattern(*size)
    grid = split_grid(image, *tile, overlap)
    xs = [x for x, _ in grid.rows[0].tiles]
    assert xs[0] == 0 and xs[-1] == size[0] - tile[0]
    assert all(b - a <= tile[0] - overlap for a, b in itertools.pairwise(xs))
    # Brighten every tile differently so blending shows.
    tiles = []
    for n, (y, (x, piece)) in enumerate((r.y, t) for r in grid.rows for t in r.tiles):
        shifted = np.clip(np.asarray(piece, dtype=int) + 10 * n, 0, 255).astype(np.uint8)
        tiles.append((x, y, shifted))
    for row in grid.rows:
        row.tiles = [(x, Image.fromarray(p)) for x, y, p in tiles if y == row.y]
    ours = np.asarray(combine_grid(grid), dtype=float)
    expected = reference_combine(tiles, size, tile, overlap)
    assert np.abs(ours - expected).max() <= 1.0


def test_sd_upscale_is_upscale_then_img2img_per_tile_then_blend(pipe: StableDiffusion) -> None:
    source = pattern(48, 40)
    spec = SdUpscaleParams(scale=2, overlap=16, upscaler="lanczos")
    params = small(init_image=source, strength=0.5, steps=4, seed=11, sd_upscale=spec)
    progress: list[Progress] = []
    (ours,) = pipe.generate(params, progress=progress.append)
    assert ours.image.size == (96, 80) and ours.seed == 11

    upscaled = source.resize((96, 80), Image.Resampling.LANCZOS)
    grid = split_grid(upscaled, 64, 64, 16)
    count = sum(len(row.tiles) for row in grid.rows)
    assert count == 4
    index = 0
    for row in grid.rows:
        for n, (x, tile) in enumerate(row.tiles):
            tile_params = replace(params, init_image=tile, seed=11 + index, sd_upscale=None)
            row.tiles[n] = (x, pipe.generate(tile_params)[0].image)
            index += 1
    assert max_diff(ours.image, combine_grid(grid)) == 0
    # One run over every tile: img2img at 0.5 of 4 steps is 2 calls a tile.
    assert [(p.step, p.total) for p in progress] == [(i, 2 * count) for i in range(1, 9)]


def test_sd_upscale_through_the_model(pipe: StableDiffusion, sr2: Path) -> None:
    source = pattern(40, 40)
    spec = SdUpscaleParams(scale=2, overlap=0, upscaler="tiny-sr", upscaler_model=sr2)
    params = small(init_image=source, strength=0.3, steps=4, seed=2, sd_upscale=spec)
    (ours,) = pipe.generate(params)
    upscaled = reference_sr(source, sr2)
    grid = split_grid(upscaled, 64, 64, 0)
    index = 0
    for row in grid.rows:
        for n, (x, tile) in enumerate(row.tiles):
            tile_params = replace(params, init_image=tile, seed=2 + index, sd_upscale=None)
            row.tiles[n] = (x, pipe.generate(tile_params)[0].image)
            index += 1
    # The model's float32 output may round one step apart from the reference's; img2img on a
    # tile that differs by one level moves a little more.
    assert max_diff(ours.image, combine_grid(grid)) <= 3


def test_sd_upscale_cancels_between_and_within_tiles(pipe: StableDiffusion) -> None:
    from impasto.engine import CancelToken, GenerationCancelled

    token = CancelToken()
    seen: list[int] = []

    def progress(p: Progress) -> None:
        seen.append(p.step)
        if p.step == 3:  # inside the second tile
            token.cancel()

    spec = SdUpscaleParams(scale=2, overlap=16, upscaler="lanczos")
    params = small(init_image=pattern(48, 40), strength=0.5, steps=4, seed=1, sd_upscale=spec)
    with pytest.raises(GenerationCancelled):
        pipe.generate(params, progress=progress, cancel=token)
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (SdUpscaleParams(overlap=64), "sd_upscale.overlap"),
        (SdUpscaleParams(scale=1, overlap=8, upscaler="none"), "sd_upscale.scale"),
    ],
)
def test_bad_sd_upscale_params_are_named(
    pipe: StableDiffusion, spec: SdUpscaleParams, field: str
) -> None:
    from impasto.engine import InvalidRequestError

    with pytest.raises(InvalidRequestError) as err:
        pipe.generate(small(init_image=pattern(48, 40), sd_upscale=spec))
    assert err.value.field == field
