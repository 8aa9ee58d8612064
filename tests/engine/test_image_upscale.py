"""The one image upscaler: PIL resizes and ONNX super-resolution models, A1111's loop and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from impasto.engine.image_upscale import ModelUpscaler, target_size, upscale_image, upscale_to
from tests.sr_model import max_diff, pattern, reference_sr, write_sr_model


@pytest.fixture(scope="module")
def sr2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sr_model(tmp_path_factory.mktemp("sr") / "tiny-sr-2x.onnx", scale=2)


@pytest.fixture(scope="module")
def sr4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sr_model(tmp_path_factory.mktemp("sr") / "tiny-sr-4x.onnx", scale=4, seed=3)


def test_model_pass_equals_the_numpy_reference(sr2: Path, sr4: Path) -> None:
    image = pattern(24, 16)
    for path in (sr2, sr4):
        ours = ModelUpscaler(path).run(image)
        # float32 against float64: at most one step of rounding apart.
        assert max_diff(ours, reference_sr(image, path)) <= 1


def test_model_scale_is_read_from_the_model(sr2: Path, sr4: Path) -> None:
    assert ModelUpscaler(sr2).scale == 2
    assert ModelUpscaler(sr4).scale == 4


def test_model_runs_until_the_target_then_lanczos(sr2: Path) -> None:
    image = pattern(20, 12)
    once = reference_sr(image, sr2)
    twice = reference_sr(once, sr2)
    assert max_diff(upscale_image(image, ModelUpscaler(sr2), 2), once) <= 1
    # 4x from a 2x model: two passes, exactly the size.
    assert max_diff(upscale_image(image, ModelUpscaler(sr2), 4), twice) <= 2
    # 3x: two passes (2x is short of it), then Lanczos down to A1111's size (floored to 8).
    three = upscale_image(image, ModelUpscaler(sr2), 3)
    assert three.size == (56, 32) == target_size(image.size, 3)
    expected = twice.resize((56, 32), Image.Resampling.LANCZOS)
    assert max_diff(three, expected) <= 2


@pytest.mark.parametrize(
    ("name", "resample"),
    [("lanczos", Image.Resampling.LANCZOS), ("nearest", Image.Resampling.NEAREST)],
)
def test_builtin_resizes(name: str, resample: Image.Resampling) -> None:
    image = pattern(40, 24)
    assert upscale_image(image, name, 2).tobytes() == image.resize((80, 48), resample).tobytes()
    # 2.5x: to int(size * 2.5) first, then Lanczos to the multiple of 8 below.
    odd = upscale_image(image, name, 2.5)
    assert odd.size == (96, 56)
    expected = image.resize((100, 60), resample).resize((96, 56), Image.Resampling.LANCZOS)
    assert odd.tobytes() == expected.tobytes()


def test_none_only_resizes_to_the_target_with_lanczos() -> None:
    image = pattern(40, 24)
    expected = image.resize((80, 48), Image.Resampling.LANCZOS)
    assert upscale_image(image, "none", 2).tobytes() == expected.tobytes()


def test_upscale_to_an_exact_size(sr2: Path) -> None:
    image = pattern(32, 32)
    result = upscale_to(image, ModelUpscaler(sr2), 64, 48)
    expected = reference_sr(image, sr2)  # ratio 2: one pass, then Lanczos to 64x48
    assert result.size == (64, 48)
    assert max_diff(result, expected.resize((64, 48), Image.Resampling.LANCZOS)) <= 1


def test_unknown_upscaler_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown upscaler 'esrgan'"):
        upscale_image(pattern(8, 8), "esrgan", 2)


def test_large_images_run_in_blended_tiles(sr2: Path) -> None:
    from impasto.engine.tiles import Grid, TileRow, combine_grid, split_grid

    image = pattern(100, 72)
    ours = ModelUpscaler(sr2, tile=48, tile_overlap=8).run(image)
    assert ours.size == (200, 144)
    # By hand: A1111's grid of the image, the model on each tile, the grid scaled and combined.
    grid = split_grid(image, 48, 48, 8)
    rows = [
        TileRow(row.y * 2, [(x * 2, reference_sr(tile, sr2)) for x, tile in row.tiles])
        for row in grid.rows
    ]
    expected = combine_grid(Grid(rows, 96, 96, 200, 144, 16))
    assert max_diff(ours, expected) <= 1
    # Tiles differ from one whole pass only near the seams (the conv sees a tile's edge).
    whole = ModelUpscaler(sr2, tile=1000).run(image)
    assert max_diff(ours, whole) > 0
    # The first tile's own area (before the next tile's overlap at 52) matches the whole pass.
    assert max_diff(ours.crop((0, 0, 48, 44)), whole.crop((0, 0, 48, 44))) <= 1
