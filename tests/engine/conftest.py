"""Shared fixtures of the engine tests: the committed tiny models, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from impasto.engine import GenerationParams, StableDiffusion, load_pipeline
from impasto.engine.providers import cpu_choice

TINY = Path(__file__).resolve().parents[2] / "models" / "tiny"
SD_TINY = TINY / "sd-tiny"
SD_TINY_V = TINY / "sd-tiny-v"
SD_TINY_INPAINT = TINY / "sd-tiny-inpaint"
SIZE = 64


def small(**overrides: object) -> GenerationParams:
    """A cheap request: 64x64, 4 steps, a fixed seed."""
    values: dict[str, object] = {
        "prompt": "a red cat in a garden",
        "negative_prompt": "blurry",
        "width": SIZE,
        "height": SIZE,
        "steps": 4,
        "cfg_scale": 7.0,
        "seed": 1234,
        "sampler": "euler",
    }
    values.update(overrides)
    return GenerationParams(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pipe() -> StableDiffusion:
    return load_pipeline(SD_TINY, cpu_choice())


@pytest.fixture(scope="session")
def pipe_v() -> StableDiffusion:
    return load_pipeline(SD_TINY_V, cpu_choice())


@pytest.fixture(scope="session")
def pipe_inpaint() -> StableDiffusion:
    return load_pipeline(SD_TINY_INPAINT, cpu_choice())
