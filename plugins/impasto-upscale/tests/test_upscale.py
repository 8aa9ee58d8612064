"""impasto-upscale through a real daemon: Lanczos without a model, the ONNX model once installed."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from PIL import Image

from tests.harness import TINY, Daemon, wait_status


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    running = Daemon(tmp_path_factory.mktemp("upscale"), preview_every=0).start()
    running.wait_worker_ready()
    yield running
    running.stop()


def generate(daemon: Daemon, **request: object) -> tuple[dict, Image.Image]:
    with daemon.client() as client:
        body = {**TINY, "prompt": "a lighthouse", "seed": 5, **request}
        job = client.post("/api/v1/generate", json=body).json()
        done = wait_status(client, job["id"], {"completed", "failed"})
        assert done["status"] == "completed", done["error"]
        png = Image.open(io.BytesIO(client.get(done["results"][0]["url"]).content))
        png.load()
    return done, png


def nearest_2x_model(path: Path) -> None:
    """A stand-in super-resolution model: nearest-neighbour 2x, easy to tell from Lanczos."""
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, 2.0, 2.0])
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    graph = helper.make_graph(
        [node],
        "sr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])],
        [scales],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


def blocky(image: Image.Image) -> bool:
    pixels = np.asarray(image.convert("RGB")).astype(int)
    return bool((pixels[0::2, 0::2] == pixels[1::2, 1::2]).all())


def test_untouched_unless_asked(daemon: Daemon) -> None:
    done, png = generate(daemon)
    assert png.size == (64, 64) and done["results"][0]["width"] == 64
    assert "upscale" not in png.text


def test_lanczos_without_a_model(daemon: Daemon) -> None:
    done, png = generate(daemon, plugins={"upscale": 2})
    assert png.size == (128, 128)
    assert (done["results"][0]["width"], done["results"][0]["height"]) == (128, 128)
    assert png.text["upscale"] == "2x lanczos" and not blocky(png)
    _, four = generate(daemon, plugins={"upscale": {"scale": 4}})
    assert four.size == (256, 256)


def test_onnx_model_once_installed(daemon: Daemon) -> None:
    nearest_2x_model(daemon.data_dir / "models" / "upscalers" / "nearest.onnx")
    _, png = generate(daemon, plugins={"upscale": 2})
    assert png.size == (128, 128)
    assert png.text["upscale"] == "2x onnx nearest.onnx" and blocky(png)
    _, small = generate(daemon)
    assert np.array_equal(
        np.asarray(small.convert("RGB")), np.asarray(png.convert("RGB"))[0::2, 0::2]
    )


def test_bad_scale_is_refused_at_submit_on_the_plugins_own_field(daemon: Daemon) -> None:
    with daemon.client() as client:
        body = {**TINY, "prompt": "x", "plugins": {"upscale": 3}}
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "plugins.upscale",
        "message": "plugin 'upscale' takes 0 | 2 | 4 | bool | {scale: 0 | 2 | 4} | None here: "
        "Invalid enum value 3",
    }


@pytest.mark.parametrize("options", ["2", [2], {"scael": 2}, {"scale": "2"}])
def test_options_of_another_shape_are_a_422_saying_what_it_takes(
    daemon: Daemon, options: object
) -> None:
    with daemon.client() as client:
        body = {**TINY, "prompt": "x", "plugins": {"upscale": options}}
        response = client.post("/api/v1/generate", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert error["field"] == "plugins.upscale"
    assert error["message"].startswith(
        "plugin 'upscale' takes 0 | 2 | 4 | bool | {scale: 0 | 2 | 4} | None here: "
    ), error
