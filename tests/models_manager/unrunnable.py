"""Tiny ONNX graphs that only some execution providers can run, built with the onnx package.

``cuda_only_unet`` imitates what Olive's CUDA pass makes of a UNet: NHWC convolutions and group
norms as ONNX Runtime contrib operators (``com.microsoft`` NhwcConv, GroupNorm), which have CUDA
and DirectML kernels but no CPU kernel. The weights go to ``model.onnx_data`` beside the graph,
as in the real builds, so an installer can read the graph before it fetches the weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.models_manager.conftest import TINY

WEIGHTS = "model.onnx_data"


def _save(model: onnx.ModelProto, path: Path, external: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(WEIGHTS)):
        stale.unlink(missing_ok=True)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=WEIGHTS,
            size_threshold=0,
        )
    else:
        onnx.save_model(model, str(path))


def cuda_only_unet(
    path: Path, *, fp16: bool = False, external: bool = True, pad_bytes: int = 0
) -> None:
    """A UNet-shaped graph (sample, timestep, encoder_hidden_states) with CUDA-only operators.

    ``pad_bytes`` adds an unused initializer of that size, standing in for a real UNet's weights.
    """
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    dtype = np.float16 if fp16 else np.float32
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 4)).astype(dtype), "conv_w")
    gamma = numpy_helper.from_array(np.ones(4, np.float32), "gn_gamma")
    beta = numpy_helper.from_array(np.zeros(4, np.float32), "gn_beta")
    nodes = [
        helper.make_node("Transpose", ["sample"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node(
            "NhwcConv", ["nhwc", "conv_w"], ["conv"], domain="com.microsoft", pads=[1, 1, 1, 1]
        ),
        helper.make_node(
            "GroupNorm",
            ["conv", "gn_gamma", "gn_beta"],
            ["normed"],
            domain="com.microsoft",
            activation=1,
            epsilon=1e-5,
            groups=2,
            channels_last=1,
        ),
        helper.make_node("Transpose", ["normed"], ["out_sample"], perm=[0, 3, 1, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "cuda_only_unet",
        [
            helper.make_tensor_value_info("sample", elem, [1, 4, 8, 8]),
            helper.make_tensor_value_info("timestep", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("encoder_hidden_states", elem, [1, 77, 32]),
        ],
        [helper.make_tensor_value_info("out_sample", elem, [1, 4, 8, 8])],
        initializer=[weight, gamma, beta],
    )
    if pad_bytes:
        pad = np.zeros(pad_bytes // np.dtype(dtype).itemsize, dtype)
        graph.initializer.append(numpy_helper.from_array(pad, "weights_stand_in"))
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    _save(helper.make_model(graph, opset_imports=opsets, ir_version=8), path, external)


def one_op_model(path: Path, op: str, *, domain: str = "", opset: int = 17) -> None:
    """y = OP(x) on float[1, 4], importing ``domain`` at ``opset``."""
    node = helper.make_node(op, ["x"], ["y"], domain=domain)
    graph = helper.make_graph(
        [node],
        "one_op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    opsets = [helper.make_opsetid("", opset if not domain else 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, opset))
    _save(helper.make_model(graph, opset_imports=opsets, ir_version=8), path, external=False)


def cuda_only_pipeline(folder: Path, *, fp16: bool = False, inline_bytes: int = 0) -> Path:
    """The tiny SD pipeline with its UNet replaced by :func:`cuda_only_unet`.

    With ``inline_bytes`` the UNet keeps that many bytes of weights inside model.onnx.
    """
    shutil.copytree(TINY / "sd-tiny", folder)
    for leftover in (folder / "unet").iterdir():
        if leftover.name != "config.json":
            leftover.unlink()
    unet = folder / "unet" / "model.onnx"
    cuda_only_unet(unet, fp16=fp16, external=not inline_bytes, pad_bytes=inline_bytes)
    return folder
