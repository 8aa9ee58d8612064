"""The disk cache of ONNX Runtime's optimised models: reuse, equal outputs, invalidation."""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from impasto.engine import load_pipeline
from impasto.engine.providers import (
    CACHED_LEVELS,
    CPU,
    OPTIMIZATION_LEVEL,
    ProviderChoice,
    cpu_choice,
    select_providers,
)
from impasto.engine.session_cache import DATA_FILE, MODEL_FILE, ORPHAN_SECONDS
from impasto.engine.sessions import OrtModel

from .conftest import SD_TINY, small
from .test_providers import CUDA, FakeEnvironment

LEVELS = ["basic", "extended", "all"]


def _choice(level: str) -> ProviderChoice:
    return dataclasses.replace(cpu_choice(), optimization_level=level, cache_optimized=True)


@pytest.fixture
def unet(tmp_path: Path) -> Path:
    """A private copy of the tiny UNet, so tests may change it."""
    folder = tmp_path / "model" / "unet"
    shutil.copytree(SD_TINY / "unet", folder)
    return folder / "model.onnx"


def _feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "sample": rng.standard_normal((2, 4, 8, 8)).astype(np.float32),
        "timestep": np.asarray(500.0, dtype=np.float32),
        "encoder_hidden_states": rng.standard_normal((2, 77, 32)).astype(np.float32),
    }


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if p.is_dir())


@pytest.mark.parametrize("level", LEVELS)
def test_second_load_opens_the_cached_model_and_gives_identical_outputs(
    unet: Path, tmp_path: Path, level: str
) -> None:
    cache = tmp_path / "cache"
    first = OrtModel(unet, _choice(level), cache)
    assert not first.cache.hit
    [entry] = _entries(cache)
    assert (entry / MODEL_FILE).is_file()
    assert (entry / DATA_FILE).stat().st_size > 100_000  # the weights left the graph file

    second = OrtModel(unet, _choice(level), cache)
    assert second.cache.hit
    assert second.cache.load_path == entry / MODEL_FILE
    assert second.cache.level == "disabled"  # already optimised: no second pass
    uncached = OrtModel(unet, _choice(level))
    expected = uncached.run(_feeds())
    np.testing.assert_array_equal(first.run(_feeds()), expected)
    np.testing.assert_array_equal(second.run(_feeds()), expected)


def _scale_weights(model: Path, factor: float) -> None:
    proto = onnx.load(str(model))
    init = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    scaled = numpy_helper.to_array(init) * np.float32(factor)
    init.CopyFrom(numpy_helper.from_array(scaled.astype(np.float32), init.name))
    onnx.save(proto, str(model))


def test_a_changed_model_invalidates_its_entry(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    before = OrtModel(unet, _choice("extended"), cache).run(_feeds())
    [old_entry] = _entries(cache)

    _scale_weights(unet, 1.5)
    changed = OrtModel(unet, _choice("extended"), cache)
    assert not changed.cache.hit
    [new_entry] = _entries(cache)  # the stale entry was removed
    assert new_entry != old_entry
    expected = OrtModel(unet, _choice("extended")).run(_feeds())
    assert not np.allclose(expected, before)
    np.testing.assert_array_equal(changed.run(_feeds()), expected)
    reloaded = OrtModel(unet, _choice("extended"), cache)
    assert reloaded.cache.hit
    np.testing.assert_array_equal(reloaded.run(_feeds()), expected)


def test_a_touched_model_is_optimised_again(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OrtModel(unet, _choice("basic"), cache)
    stat = unet.stat()
    os.utime(unet, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not OrtModel(unet, _choice("basic"), cache).cache.hit


def test_levels_and_providers_have_separate_entries(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OrtModel(unet, _choice("basic"), cache)
    OrtModel(unet, _choice("all"), cache)
    assert len(_entries(cache)) == 2
    assert OrtModel(unet, _choice("basic"), cache).cache.hit


def test_external_data_models_are_cached(unet: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(unet))
    onnx.save(proto, str(unet), save_as_external_data=True, location="weights.bin")
    cache = tmp_path / "cache"
    expected = OrtModel(unet, _choice("extended")).run(_feeds())
    OrtModel(unet, _choice("extended"), cache)
    # The key covers the weights file too: changing it alone must miss.
    data = unet.parent / "weights.bin"
    stat = data.stat()
    cached = OrtModel(unet, _choice("extended"), cache)
    assert cached.cache.hit
    np.testing.assert_array_equal(cached.run(_feeds()), expected)
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert not OrtModel(unet, _choice("extended"), cache).cache.hit


def test_a_damaged_entry_is_rebuilt(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    OrtModel(unet, _choice("extended"), cache)
    [entry] = _entries(cache)
    (entry / MODEL_FILE).write_bytes(b"not a model")
    model = OrtModel(unet, _choice("extended"), cache)
    np.testing.assert_array_equal(
        model.run(_feeds()), OrtModel(unet, _choice("extended")).run(_feeds())
    )
    assert OrtModel(unet, _choice("extended"), cache).cache.hit  # written again


def test_nothing_is_cached_without_a_dir_or_at_level_disabled(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    model = OrtModel(unet, _choice("disabled"), cache)
    assert model.cache.load_path == unet
    assert not cache.exists() or not any(cache.iterdir())
    assert OrtModel(unet, _choice("extended")).cache.entry is None
    # A provider/level whose optimisation is cheap is not worth a disk copy of the weights.
    cheap = dataclasses.replace(_choice("extended"), cache_optimized=False)
    OrtModel(unet, cheap, cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_load_pipeline_with_a_cache_dir_generates_the_same_image(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    choice = _choice("extended")
    plain = np.asarray(load_pipeline(SD_TINY, choice).generate(small())[0].image)
    first = load_pipeline(SD_TINY, choice, cache_dir=cache)
    assert len(_entries(cache)) == len(first.models)  # one entry per component
    second = load_pipeline(SD_TINY, choice, cache_dir=cache)
    assert all(m.cache.hit for m in second.models)
    for pipe in (first, second):
        np.testing.assert_array_equal(np.asarray(pipe.generate(small())[0].image), plain)


COREML = "CoreMLExecutionProvider"


def test_selection_caches_only_where_the_level_pays() -> None:
    cuda = select_providers(env=FakeEnvironment([CUDA, CPU], gpus=1, works={CUDA, CPU}))
    assert cuda.cache_optimized == (cuda.optimization_level in CACHED_LEVELS)
    cpu = select_providers(env=FakeEnvironment([CPU], gpus=0, works={CPU}))
    assert cpu.optimization_level == OPTIMIZATION_LEVEL[CPU]
    assert cpu.cache_optimized == (OPTIMIZATION_LEVEL[CPU] in CACHED_LEVELS)
    cheap = select_providers(env=FakeEnvironment([CPU, COREML], gpus=0, works={CPU, COREML}))
    assert cheap.name == COREML and not cheap.cache_optimized  # compiles the graph itself


def test_orphaned_private_folders_are_removed_on_the_next_save(unet: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    old, fresh = cache / ".tmp-killed-old", cache / ".tmp-writing-now"
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / MODEL_FILE).write_bytes(b"half written")
    day_ago = time.time() - ORPHAN_SECONDS - 60
    os.utime(old, (day_ago, day_ago))
    OrtModel(unet, _choice("all"), cache)
    assert not old.exists()
    assert fresh.exists()  # might be another process saving right now
