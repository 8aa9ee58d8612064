"""SDXL base + refiner through the daemon, on the bundled tiny models."""

from __future__ import annotations

import numpy as np

from tests.harness import TINY, Daemon, generated_pixels


def _generate(daemon: Daemon, **fields: object) -> np.ndarray:
    request = {"prompt": "a tiny house", "seed": 5, "model": "sdxl-tiny", **TINY, **fields}
    with daemon.client() as client:
        return generated_pixels(client, request)


def test_generate_with_a_refiner(impasto_daemon: Daemon) -> None:
    plain = _generate(impasto_daemon, sampler="euler")
    refined = _generate(
        impasto_daemon, sampler="euler", refiner="sdxl-tiny-refiner", refiner_switch=0.5
    )
    assert refined.shape == plain.shape
    assert np.abs(refined - plain).max() > 2
    # At switch 1 the base runs every step: the refiner is not used.
    full = _generate(impasto_daemon, sampler="euler", refiner="sdxl-tiny-refiner", refiner_switch=1)
    assert np.array_equal(full, plain)


def test_refiner_must_be_an_installed_refiner(impasto_daemon: Daemon) -> None:
    with impasto_daemon.client() as client:
        for refiner in ("no-such-model", "sd-tiny"):
            response = client.post(
                "/api/v1/generate",
                json={"prompt": "x", "model": "sdxl-tiny", **TINY, "refiner": refiner},
            )
            assert response.status_code == 422, response.text
            assert response.json()["errors"][0]["field"] == "refiner"
        alone = client.post(
            "/api/v1/generate", json={"prompt": "x", "model": "sdxl-tiny-refiner", **TINY}
        )
        assert alone.status_code == 422 and alone.json()["errors"][0]["field"] == "model"
        switch = client.post(
            "/api/v1/generate", json={"prompt": "x", **TINY, "refiner_switch": 1.5}
        )
        assert switch.status_code == 422
        assert switch.json()["errors"][0]["field"] == "refiner_switch"
