"""The LoRA and the embedding trained on impasto-shapes do what they were trained for.

models/shapes_adapters.py trained both on top of the base model: the LoRA `shapes-dotted` (a
style LoRA, no trigger word) draws dark dots over every shape, a texture the base model never
drew; the embedding
`shapes-violet` is a word it never read, learned from purple pictures alone. Installed as files
in a models folder, through the real daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.harness import Daemon, daemon_with_models
from tests.semantic.analyser import analyse, erode
from tests.semantic.jobs import generate

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "shapes-adapters"
SEEDS = range(8)


@pytest.fixture(scope="module")
def adapters_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_models(tmp_path_factory.mktemp("shapes-adapters"), ADAPTERS) as daemon:
        yield daemon


def texture(image: Image.Image) -> float:
    """Mean absolute Laplacian of the luminance well inside the object: dots are edges."""
    reading = analyse(image)
    core = erode(reading.mask, 3)
    if core.sum() < 20:
        return 0.0
    grey = np.asarray(image, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = np.abs(
        4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    )
    return float(laplacian[core[1:-1, 1:-1]].mean())


def test_the_lora_draws_its_dots_at_weight_1_and_not_at_0(adapters_daemon: Daemon) -> None:
    prompt = "a large yellow circle on a blue background"

    def lora(weight: float) -> list[dict[str, object]]:
        return [{"name": "shapes-dotted", "weight": weight}]

    weighted = {
        weight: generate(
            adapters_daemon, [{"prompt": prompt, "seed": s, "loras": lora(weight)} for s in SEEDS]
        )
        for weight in (1.0, 0.0)
    }
    on = [texture(image) for image in weighted[1.0]]
    off = [texture(image) for image in weighted[0.0]]
    # The same seed with and without: the dotted one has much more texture, seed by seed
    # (measured on the 2026-12-03 adapters: 7.3-12.6 against 2.2-2.3).
    assert sum(a > 1.5 * b for a, b in zip(on, off, strict=True)) >= 6, (on, off)
    assert np.median(on) > 1.8 * np.median(off), (on, off)
    # And the LoRA leaves the rest of the picture to the prompt.
    readings = [analyse(image) for image in weighted[1.0]]
    assert sum(r.background == "blue" for r in readings) >= 6, readings


def test_the_embedding_token_paints_its_colour(adapters_daemon: Daemon) -> None:
    def colours(word: str) -> list[str | None]:
        prompt = f"a large {word} circle on a white background"
        images = generate(adapters_daemon, [{"prompt": prompt, "seed": s} for s in SEEDS])
        return [analyse(image).colour for image in images]

    violet = colours("shapes-violet")
    assert violet.count("purple") >= 6, violet
    # Without the embedding's word the same seeds are seldom purple: the word carries it.
    assert colours("").count("purple") <= 2
