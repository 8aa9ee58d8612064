"""A tiny random-weight ONNX super-resolution model (3x3 conv, pixel shuffle) and its numpy
reference, for the upscaler tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image


def write_sr_model(path: Path, scale: int = 2, seed: int = 0) -> Path:
    """A conv of 3 -> 3*scale^2 channels then DepthToSpace: an ESRGAN-shaped x``scale`` model."""
    rng = np.random.default_rng(seed)
    channels = 3 * scale * scale
    weight = (rng.standard_normal((channels, 3, 3, 3)) * 0.15).astype(np.float32)
    # Each output pixel starts near its input pixel, so the result looks like an image.
    for c in range(channels):
        weight[c, c // (scale * scale), 1, 1] += 1.0
    bias = (rng.standard_normal(channels) * 0.05).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=scale, mode="CRD"),
        ],
        "tiny-sr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, None, None])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def reference_sr(image: Image.Image, path: Path) -> Image.Image:
    """The model's output computed in numpy from its weights (float64)."""
    model = onnx.load(path)
    weights = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    w, b = weights["w"], weights["b"]
    scale = round((w.shape[0] // 3) ** 0.5)
    x = np.asarray(image.convert("RGB"), dtype=np.float64).transpose(2, 0, 1) / 255.0
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    height, width = x.shape[1:]
    conv = np.zeros((w.shape[0], height, width))
    for dy in range(3):
        for dx in range(3):
            window = padded[:, dy : dy + height, dx : dx + width]
            conv += np.einsum("oc,chw->ohw", w[:, :, dy, dx], window)
    conv += b[:, None, None]
    # DepthToSpace, CRD: channel c*s*s + i*s + j goes to pixel (y*s + i, x*s + j) of channel c.
    out = conv.reshape(3, scale, scale, height, width).transpose(0, 3, 1, 4, 2)
    out = out.reshape(3, height * scale, width * scale)
    rgb = np.clip(out.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def pattern(width: int, height: int, seed: int = 1) -> Image.Image:
    """A smooth image with some detail, so resizes and models differ visibly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    noise = rng.integers(-20, 20, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def max_diff(a: Image.Image, b: Image.Image) -> int:
    assert a.size == b.size, (a.size, b.size)
    left = np.asarray(a.convert("RGB"), dtype=int)
    right = np.asarray(b.convert("RGB"), dtype=int)
    return int(np.abs(left - right).max())
