"""Int8 UNets written by services/int8.py (no ``onnx`` package) against ONNX Runtime's own
``quantize_dynamic`` with the options Impasto used before (the oracle: ``onnx`` is here only
for it): the same weights, the same outputs, inline and external weights, and no ``onnx``
import in the install step."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.quantization.quant_utils import quantize_data

from impasto.formats.onnx_model import OnnxModel
from impasto.services.int8 import DATA_FILE, quantize_matmuls, quantize_weight
from tests.harness import REPO
from tests.without_onnx import run_step_without_onnx

TINY = REPO / "models" / "tiny"
UNETS = ["sd-tiny", "sdxl-tiny", "impasto-shapes"]


def _reference(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic quantisation as Impasto called it until it wrote its own."""
    target.parent.mkdir(parents=True)
    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=["MatMul", "Gemm"],
        weight_type=QuantType.QInt8,
        reduce_range=True,
        use_external_data_format=True,
        extra_options={"MatMulConstBOnly": True},
    )


def _run(path: Path, feeds: dict[str, np.ndarray] | None = None) -> tuple[dict, np.ndarray]:
    """The UNet's output on fixed inputs, with the engine's default graph optimisation."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    if feeds is None:
        rng = np.random.default_rng(0)
        feeds = {}
        for spec in session.get_inputs():
            shape = [
                d if isinstance(d, int) else {0: 2, 1: 77}.get(i, 16)
                for i, d in enumerate(spec.shape)
            ]
            if spec.name == "timestep":
                feeds[spec.name] = np.full(shape, 500, np.float32)
            elif spec.name == "time_ids":
                feeds[spec.name] = np.tile(np.array([64, 64, 0, 0, 64, 64], np.float32), (2, 1))
            else:
                feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds, np.asarray(session.run(None, feeds)[0])


def _ops(path: Path) -> list[str]:
    return [node.op_type for node in OnnxModel.load(path).graph.nodes]


def test_weights_are_quantised_as_onnx_runtime_quantises_them() -> None:
    rng = np.random.default_rng(1)
    cases = [
        rng.standard_normal((64, 48)).astype(np.float32) * 0.05,
        np.abs(rng.standard_normal((8, 8))).astype(np.float32),  # no negative values
        np.zeros((4, 4), np.float32),
        np.array([[-1.0, 0.5, 1 / 128, 3 / 128]], np.float32),  # halves round to even
    ]
    for weight in cases:
        values, scale = quantize_weight(weight)
        zero_point, want_scale, want = quantize_data(
            weight.ravel(), onnx.TensorProto.INT8, symmetric=True, reduce_range=True
        )
        assert values.dtype == np.int8 and int(zero_point) == 0
        assert scale == np.float32(want_scale)
        np.testing.assert_array_equal(values.ravel(), want)


@pytest.mark.parametrize("model", UNETS)
def test_the_int8_unet_computes_what_onnx_runtimes_quantiser_makes(
    tmp_path: Path, model: str
) -> None:
    source = TINY / model / "unet" / "model.onnx"
    _reference(source, tmp_path / "reference" / "model.onnx")
    count = quantize_matmuls(source, tmp_path / "ours" / "model.onnx")
    reference_ops, ours = (
        _ops(tmp_path / "reference" / "model.onnx"),
        _ops(tmp_path / "ours" / "model.onnx"),
    )
    assert count == reference_ops.count("MatMulInteger") == ours.count("DynamicQuantizeMatMul")
    assert "Gemm" not in ours and "Gemm" in _ops(source)  # linear layers with a bias too
    feeds, exported = _run(source)
    _, want = _run(tmp_path / "reference" / "model.onnx", feeds)
    _, got = _run(tmp_path / "ours" / "model.onnx", feeds)
    scale = float(np.abs(exported).max())
    assert float(np.abs(want - exported).max()) / scale > 1e-4  # quantised: not the fp32 model
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale)


def test_external_weights_are_copied_to_one_data_file(tmp_path: Path) -> None:
    """A UNet over 2 GB keeps its weights in files beside the graph: the kept ones (the
    convolutions, Constant nodes' values) and the new int8 ones go to one data file; the
    source's stays as it was."""
    source = tmp_path / "source" / "model.onnx"
    source.parent.mkdir()
    onnx.save_model(
        onnx.load(str(TINY / "impasto-shapes" / "unet" / "model.onnx")),
        str(source),
        save_as_external_data=True,
        location="weights.bin",
        size_threshold=0,  # as optimum exports: every tensor, Constant nodes' values too
        convert_attribute=True,
    )
    before = (source.parent / "weights.bin").read_bytes()
    quantize_matmuls(source, tmp_path / "ours" / "model.onnx")
    _reference(source, tmp_path / "reference" / "model.onnx")
    assert {p.name for p in (tmp_path / "ours").iterdir()} == {DATA_FILE, "model.onnx"}
    assert (tmp_path / "ours" / "model.onnx").stat().st_size < source.stat().st_size * 1.2
    assert (source.parent / "weights.bin").read_bytes() == before
    written = onnx.load(str(tmp_path / "ours" / "model.onnx"), load_external_data=False)
    locations = {
        entry.value
        for tensor in written.graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    assert locations == {DATA_FILE}
    feeds, want = _run(tmp_path / "reference" / "model.onnx")
    _, got = _run(tmp_path / "ours" / "model.onnx", feeds)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


def test_the_install_step_quantises_without_the_onnx_package(tmp_path: Path) -> None:
    """As the single binary runs it: ``onnx`` cannot be imported in the child."""
    folder = run_step_without_onnx("int8", "sd-tiny", tmp_path)
    assert _ops(folder / "unet" / "model.onnx").count("DynamicQuantizeMatMul") == 50
    assert not (folder / "unet" / ".int8").exists()  # the work folder is gone
