"""impasto-watermark through a real daemon: off by default, detectable once enabled."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from impasto_watermark import detect, draw_visible, embed
from PIL import Image

from tests.harness import TINY, Daemon, wait_status


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("watermark"), preview_every=0)
    running.root.mkdir(parents=True, exist_ok=True)
    running.root.joinpath("config.toml").write_text('[plugins.watermark]\ntext = "made by tests"\n')
    running.start().wait_worker_ready()
    yield running
    running.stop()


def generate(daemon: Daemon, **request: object) -> Image.Image:
    with daemon.client() as client:
        job = client.post(
            "/api/v1/generate", json={**TINY, "prompt": "a boat", "seed": 9, **request}
        )
        done = wait_status(client, job.json()["id"], {"completed", "failed"})
        assert done["status"] == "completed", done["error"]
        png = Image.open(io.BytesIO(client.get(done["results"][0]["url"]).content))
        png.load()
    return png


def test_invisible_watermark_is_detectable_once_enabled(daemon: Daemon) -> None:
    plain = generate(daemon)
    assert detect(plain) is None
    with daemon.client() as client:
        assert client.post("/api/v1/plugins/watermark/enable").json()["enabled"] is True
    marked = generate(daemon, plugins={"upscale": 2})  # upscaled first, then marked
    assert detect(marked) == "made by tests" and marked.text["watermark"] == "invisible"
    assert marked.size == (128, 128)
    same = generate(daemon)
    difference = np.abs(np.asarray(same, dtype=int) - np.asarray(plain, dtype=int))
    assert difference.max() == 1  # only the lowest bit moved


def test_embed_and_visible_round_trip() -> None:
    image = Image.new("RGB", (64, 64), (100, 150, 200))
    assert detect(embed(image, "ünïcode")) == "ünïcode"
    visible = draw_visible(image, "AI")
    assert visible.getpixel((63, 63)) == (0, 0, 0) and visible.getpixel((0, 0)) == (100, 150, 200)
