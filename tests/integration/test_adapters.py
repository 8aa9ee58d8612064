"""LoRAs, VAE swaps, embeddings and clip skip through the daemon, on the tiny models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.harness import TINY, Daemon, daemon_with_models, generated_pixels

ADAPTERS = Path(__file__).resolve().parents[2] / "models" / "tiny" / "adapters"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_models(tmp_path_factory.mktemp("adapters"), ADAPTERS) as d:
        yield d


def pixels(daemon: Daemon, **fields: object) -> np.ndarray:
    with daemon.client() as client:
        return generated_pixels(client, {"prompt": "a tiny house", "seed": 11, **TINY, **fields})


def test_lora_changes_the_image_and_weight_zero_does_not(daemon: Daemon) -> None:
    plain = pixels(daemon)
    with_lora = pixels(daemon, loras=[{"name": "tiny-peft", "weight": 1.0}])
    zero = pixels(daemon, loras=[{"name": "tiny-peft", "weight": 0.0}])
    assert np.abs(with_lora - plain).max() > 0
    assert np.array_equal(zero, plain)
    both = pixels(
        daemon, loras=[{"name": "tiny-peft", "weight": 0.7}, {"name": "tiny-kohya", "weight": -0.8}]
    )
    assert np.abs(both - with_lora).max() > 0


def test_vae_swap_changes_the_decode(daemon: Daemon) -> None:
    assert np.abs(pixels(daemon, vae="sd-tiny-vae-alt") - pixels(daemon)).max() > 0


def test_clip_skip_on_a_model_with_hidden_states(daemon: Daemon) -> None:
    base = pixels(daemon, model="sd-tiny-turbo", cfg_scale=1.0, steps=1)
    skipped = pixels(daemon, model="sd-tiny-turbo", cfg_scale=1.0, steps=1, clip_skip=2)
    assert np.abs(base - skipped).max() > 0


def test_unknown_adapters_are_refused_by_name(daemon: Daemon) -> None:
    with daemon.client() as client:
        lora = client.post(
            "/api/v1/generate", json={"prompt": "x", **TINY, "loras": [{"name": "nope"}]}
        )
        assert lora.status_code == 422 and "tiny-peft" in lora.json()["detail"]
        vae = client.post("/api/v1/generate", json={"prompt": "x", **TINY, "vae": "../sd-tiny"})
        assert vae.status_code == 422 and vae.json()["errors"][0]["field"] == "vae"
