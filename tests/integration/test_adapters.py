"""LoRAs, VAE swaps, embeddings and clip skip through the daemon, on the tiny models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from impasto.formats.png import read_png_metadata
from tests.harness import TINY, Daemon, daemon_with_models, generated_pixels, wait_status

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


def test_a_lora_tag_in_the_prompt_is_the_lora_and_the_png_text_writes_it_back(
    daemon: Daemon,
) -> None:
    """As in AUTOMATIC1111: the same picture as the ``loras`` field gives, and the PNG's
    ``parameters`` text (what A1111's PNG Info and Civitai read) carries the tag again."""
    field = pixels(daemon, loras=[{"name": "tiny-peft", "weight": 0.7}])
    with daemon.client() as client:
        body = {"prompt": "a tiny house <lora:tiny-peft:0.7>", "seed": 11, **TINY}
        response = client.post("/api/v1/generate", json=body)
        done = wait_status(client, response.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done
        png = client.get(done["results"][0]["url"]).content
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16), field)
    metadata = read_png_metadata(png)
    assert metadata["parameters"].startswith("a tiny house <lora:tiny-peft:0.7>\n")
    assert metadata["impasto"]["prompt"] == "a tiny house"
    assert metadata["impasto"]["loras"] == [
        {"name": "tiny-peft", "weight": 0.7, "unet_weight": None}
    ]


def test_a_tag_with_a_unet_weight_applies_it_to_the_unet_alone(daemon: Daemon) -> None:
    """A1111's ``<lora:name:te:unet>``: the same picture as ``unet_weight`` in ``loras``, not
    the one of the text encoders' weight on both, and the PNG text keeps both weights."""
    field = pixels(daemon, loras=[{"name": "tiny-peft", "weight": 0.7, "unet_weight": 0.0}])
    both = pixels(daemon, loras=[{"name": "tiny-peft", "weight": 0.7}])
    assert np.abs(field - both).max() > 0
    with daemon.client() as client:
        body = {"prompt": "a tiny house <lora:tiny-peft:te=0.7:unet=0>", "seed": 11, **TINY}
        done = wait_status(
            client, client.post("/api/v1/generate", json=body).json()["id"], {"completed", "failed"}
        )
        assert done["status"] == "completed", done
        png = client.get(done["results"][0]["url"]).content
        bad = {"prompt": "a <lora:tiny-peft:1:1:8>", **TINY}
        refused = client.post("/api/v1/generate", json=bad)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16), field)
    assert read_png_metadata(png)["parameters"].startswith("a tiny house <lora:tiny-peft:0.7:0>\n")
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "prompt"
    assert "<lora:tiny-peft:1:1:8>" in refused.json()["detail"]


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
