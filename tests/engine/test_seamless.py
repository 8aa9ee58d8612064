"""Seamless tiling: the rewritten graphs against diffusers' modules with circular padding (what
A1111 does to every Conv2d), and the whole pipeline's pictures wrapping around.

The oracle modules are impasto-shapes' UNet and VAE read back into diffusers' torch classes
(models/shapes_from_onnx.py, which checks each against its ONNX graph), their ``Conv2d``s set
to ``padding_mode="circular"``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from impasto.engine import GenerationParams, StableDiffusion, load_pipeline
from impasto.engine.providers import cpu_choice
from impasto.engine.seamless import FILE, INFO_FILE, SeamlessError, seamless_graph
from impasto.engine.types import HiresParams, InvalidRequestError

from .conftest import TINY

SHAPES = TINY / "impasto-shapes"
ROOT = TINY.parents[1]


@pytest.fixture(scope="module")
def oracle() -> Any:
    import sys

    sys.path.insert(0, str(ROOT / "models"))
    try:
        import shapes_from_onnx
    finally:
        sys.path.remove(str(ROOT / "models"))
    return shapes_from_onnx


def _circular(module: torch.nn.Module) -> torch.nn.Module:
    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs
    for conv in convs:
        conv.padding_mode = "circular"
    return module


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_the_seamless_unet_is_diffusers_with_circular_convolutions(
    oracle: Any, tmp_path: Path
) -> None:
    unet = _circular(oracle.unet(SHAPES))
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((2, 4, 16, 24)).astype(np.float32)
    hidden = rng.standard_normal((2, 77, 64)).astype(np.float32)
    with torch.no_grad():
        expected = unet(
            torch.from_numpy(sample), 500.0, encoder_hidden_states=torch.from_numpy(hidden)
        ).sample.numpy()
    feeds = {
        "sample": sample,
        "timestep": np.array(500.0, np.float32),
        "encoder_hidden_states": hidden,
    }
    graph = seamless_graph(SHAPES / "unet" / "model.onnx", tmp_path)
    got = _session(graph).run(None, feeds)[0]
    assert np.abs(got - expected).max() < 1e-4
    # The plain graph pads with zeros: far from the circular oracle at the edges.
    plain = _session(SHAPES / "unet" / "model.onnx").run(None, feeds)[0]
    assert np.abs(plain - expected).max() > 0.1


def test_the_seamless_vae_is_diffusers_with_circular_convolutions(
    oracle: Any, tmp_path: Path
) -> None:
    vae = _circular(oracle.vae(SHAPES))
    rng = np.random.default_rng(1)
    latents = rng.standard_normal((1, 4, 12, 20)).astype(np.float32)
    image = rng.uniform(-1, 1, (1, 3, 96, 160)).astype(np.float32)
    with torch.no_grad():
        decoded = vae.decode(torch.from_numpy(latents)).sample.numpy()
        moments = vae.encoder(torch.from_numpy(image))
        moments = vae.quant_conv(moments).numpy()
    decoder = seamless_graph(SHAPES / "vae_decoder" / "model.onnx", tmp_path)
    got = _session(decoder).run(None, {"latent_sample": latents})[0]
    assert np.abs(got - decoded).max() < 1e-4
    encoder = seamless_graph(SHAPES / "vae_encoder" / "model.onnx", tmp_path)
    got = _session(encoder).run(None, {"sample": image})[0]
    assert np.abs(got - moments).max() < 1e-4


def test_the_graph_is_written_once_and_redone_when_the_model_changes(tmp_path: Path) -> None:
    """Beside a model of external weights; in the cache folder for inline ones (bundled model
    folders stay as shipped)."""
    model = tmp_path / "unet" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(SHAPES / "vae_decoder" / "model.onnx", model)
    first = seamless_graph(model, tmp_path / "cache")
    assert first.is_relative_to(tmp_path / "cache") and first.name == FILE
    assert not (model.parent / FILE).exists()
    written = first.stat().st_mtime_ns
    assert seamless_graph(model, tmp_path / "cache") == first
    assert first.stat().st_mtime_ns == written
    model.touch()  # an install step rewrote it
    seamless_graph(model, tmp_path / "cache")
    assert first.stat().st_mtime_ns != written
    assert (first.parent / INFO_FILE).is_file()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> StableDiffusion:
    """With a cache folder, as the daemon's worker opens models: the wrapping graphs of
    inline weights are written there, not into the model folder."""
    return load_pipeline(SHAPES, cpu_choice(), cache_dir=tmp_path_factory.mktemp("cache"))


def _params(**values: Any) -> GenerationParams:
    fields: dict[str, Any] = {"prompt": "a red circle on a blue background", "seed": 3}
    fields.update(width=128, height=192, steps=6, cfg_scale=5.0, sampler="euler", tiling=True)
    return GenerationParams(**{**fields, **values})


def _noise(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(8).standard_normal(shape).astype(np.float32)


LORA = TINY / "shapes-adapters" / "loras" / "shapes-dotted.safetensors"


@pytest.mark.parametrize(("sampler", "loras"), [("euler", []), ("dpmpp_2m", [(LORA, 1.0)])])
def test_a_seamless_picture_wraps_around(
    shapes: StableDiffusion, sampler: str, loras: list[tuple[Path, float]]
) -> None:
    """On a torus, turning the starting noise turns the picture with it: the UNet (whose
    downsampling keeps shifts of 4 latents) and the VAE wrap, and nothing else depends on
    where the edge is; a LoRA applies to the wrapping UNet as to the plain one. Without
    tiling the edges pad with zeros and the pictures differ."""
    noise = _noise((1, 4, 24, 16))
    shifted = np.roll(noise, (8, 4), axis=(2, 3))
    params = _params(sampler=sampler, loras=loras)

    def pixels(p: GenerationParams, latents: np.ndarray) -> np.ndarray:
        return np.asarray(shapes.generate(p, latents=latents)[0].image, dtype=np.int32)

    tiled = pixels(params, noise)
    if loras:  # the LoRA is there: its dots
        assert np.abs(tiled - pixels(replace(params, loras=[]), noise)).max() > 40
    turned = np.roll(tiled, (64, 32), axis=(0, 1))
    assert np.abs(pixels(params, shifted) - turned).max() <= 2
    plain = replace(params, tiling=False)
    assert (
        np.abs(pixels(plain, shifted) - np.roll(pixels(plain, noise), (64, 32), (0, 1))).max() > 40
    )


@pytest.mark.parametrize("axis", ["x", "y"])
def test_one_axis_wraps_and_the_other_does_not(shapes: StableDiffusion, axis: str) -> None:
    """Tiling along one axis: turning the noise along that axis turns the picture with it;
    along the other it does not (that axis pads with zeros, as without tiling). The side that
    does not wrap need not be a multiple of the UNet's step."""
    noise = _noise((1, 4, 24, 16))
    along, across = (3, 2) if axis == "x" else (2, 3)
    params = _params(tiling=axis)

    def pixels(latents: np.ndarray) -> np.ndarray:
        return np.asarray(shapes.generate(params, latents=latents)[0].image, dtype=np.int32)

    tiled = pixels(noise)
    image_axis = {3: 1, 2: 0}
    turned = pixels(np.roll(noise, 8, axis=along))
    assert np.abs(turned - np.roll(tiled, 64, axis=image_axis[along])).max() <= 2
    across_turned = pixels(np.roll(noise, 8, axis=across))
    assert np.abs(across_turned - np.roll(tiled, 64, axis=image_axis[across])).max() > 40
    odd = {"height": 200} if axis == "x" else {"width": 136}
    assert shapes.generate(_params(tiling=axis, **odd))[0].image.size == (
        odd.get("width", 128),
        odd.get("height", 192),
    )


def test_seamless_img2img_and_hires_run(shapes: StableDiffusion) -> None:
    """The encoder and a hires pass use the wrapping graphs too (a hires pass's picture turns
    with its noise as the first pass's does)."""
    base = np.asarray(shapes.generate(_params(), latents=_noise((1, 4, 24, 16)))[0].image)
    init = _params(init_image=Image.fromarray(base), strength=0.5)
    assert shapes.generate(init)[0].image.size == (128, 192)
    hires = _params(hires=HiresParams(width=192, height=256, steps=3, strength=0.5))
    assert shapes.generate(hires)[0].image.size == (192, 256)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"cache_interval": 3}, "cache_interval"),
        ({"decoder": "fast"}, "decoder"),
        ({"width": 136}, "width"),
        ({"hires": HiresParams(width=200, height=256)}, "hires.width"),
    ],
)
def test_what_cannot_wrap_is_refused(
    shapes: StableDiffusion, values: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as refused:
        shapes.generate(_params(**values))
    assert refused.value.field == field


def _conv_model(path: Path, **attributes: Any) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], **attributes)
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [weight],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    return path


def test_one_convolution_wraps_as_torchs_circular_padding(tmp_path: Path) -> None:
    """Asymmetric pads too: what F.pad(mode="circular") then an unpadded conv gives."""
    model = _conv_model(tmp_path / "model.onnx", pads=[2, 1, 0, 1], kernel_shape=[3, 3])
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    got = _session(seamless_graph(model, tmp_path / "cache")).run(None, {"x": x})[0]
    padded = torch.nn.functional.pad(torch.from_numpy(x), (1, 1, 2, 0), mode="circular")
    expected = torch.nn.functional.conv2d(padded, torch.ones(1, 1, 3, 3)).numpy()
    np.testing.assert_allclose(got, expected)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_one_axis_wraps_as_circular_padding_there_and_zeros_across(
    tmp_path: Path, axis: str
) -> None:
    model = _conv_model(tmp_path / "model.onnx", pads=[2, 1, 0, 1], kernel_shape=[3, 3])
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    path = seamless_graph(model, tmp_path / "cache", axis)
    assert path.name == f"seamless-{axis}.onnx"
    got = _session(path).run(None, {"x": x.numpy()})[0]
    pad = torch.nn.functional.pad
    if axis == "x":
        padded = pad(pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 2, 0))
    else:
        padded = pad(pad(x, (0, 0, 2, 0), mode="circular"), (1, 1, 0, 0))
    expected = torch.nn.functional.conv2d(padded, torch.ones(1, 1, 3, 3)).numpy()
    np.testing.assert_allclose(got, expected)
    both = _session(seamless_graph(model, tmp_path / "cache")).run(None, {"x": x.numpy()})[0]
    assert not np.allclose(both, got)


def test_a_convolution_that_pads_itself_cannot_wrap(tmp_path: Path) -> None:
    model = _conv_model(tmp_path / "model.onnx", auto_pad="SAME_UPPER", kernel_shape=[3, 3])
    with pytest.raises(SeamlessError, match="SAME_UPPER"):
        seamless_graph(model, tmp_path / "cache")
