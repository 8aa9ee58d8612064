"""formats.onnx_model: ONNX graphs read and written without the onnx package, checked against
the onnx package's own reading and writing of the same models and edits."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from impasto.formats.onnx_model import Node, OnnxModel
from impasto.services.fusion import count_ops
from tests.harness import REPO
from tests.without_onnx import run_step_without_onnx

TINY = REPO / "models" / "tiny"
GRAPHS = sorted(TINY.glob("*/*/model.onnx"))


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_an_unedited_model_is_written_back_byte_for_byte(path: Path) -> None:
    model = OnnxModel.load(path)
    assert model.encode() == path.read_bytes()
    reference = onnx.load(str(path), load_external_data=False)
    assert [n.op_type for n in model.graph.nodes] == [n.op_type for n in reference.graph.node]
    assert [o.name for o in model.graph.outputs] == [o.name for o in reference.graph.output]


def _tensors() -> list[TensorProto]:
    """One tensor per way the format stores values."""
    rng = np.random.default_rng(0)
    floats = rng.standard_normal((2, 3)).astype(np.float32)
    halves = rng.standard_normal(4).astype(np.float16)
    return [
        numpy_helper.from_array(floats, "raw_float"),
        helper.make_tensor("float_data", TensorProto.FLOAT, [2, 3], floats.ravel().tolist()),
        helper.make_tensor("int64_data", TensorProto.INT64, [3], [-1, 0, 2**40]),
        numpy_helper.from_array(np.array([-5, 7], np.int64), "raw_int64"),
        helper.make_tensor("int32_data", TensorProto.INT32, [2], [-3, 9]),
        helper.make_tensor("double_data", TensorProto.DOUBLE, [2], [0.25, -1e300]),
        numpy_helper.from_array(halves, "raw_float16"),
        helper.make_tensor("float16_bits", TensorProto.FLOAT16, [4], halves.tolist()),
        helper.make_tensor("scalar", TensorProto.FLOAT, [], [0.125]),
    ]


def test_tensor_values_read_as_the_onnx_package_reads_them() -> None:
    tensors = _tensors()
    constants = [
        helper.make_node("Constant", [], [f"c_{t.name}"], value=t, name=f"C_{t.name}")
        for t in tensors
    ]
    graph = helper.make_graph(
        [
            *constants,
            helper.make_node("Constant", [], ["vf"], value_float=-2.5),
            helper.make_node("Constant", [], ["vi"], value_int=-7),
            helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 1, 3]),
            helper.make_node("Softmax", ["y"], ["z"], axis=-1),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 2, 4])],
        initializer=tensors,
    )
    model = OnnxModel(helper.make_model(graph).SerializeToString())
    for tensor in tensors:
        want = numpy_helper.to_array(tensor)
        for got in (
            model.graph.initializers[tensor.name],
            next(n for n in model.graph.nodes if n.name == f"C_{tensor.name}").attributes[0].t,
        ):
            assert got is not None and got.values is not None, tensor.name
            assert got.values.dtype == want.dtype and got.dims == want.shape, tensor.name
            np.testing.assert_array_equal(got.values, want)
    by_output = {n.outputs[0]: n for n in model.graph.nodes}
    assert by_output["vf"].attributes[0].f == -2.5
    assert by_output["vi"].attributes[0].i == -7
    assert by_output["y"].attributes[0].ints == [0, 2, 1, 3]
    assert by_output["z"].attributes[0].i == -1


def test_external_weights_keep_their_shape_and_are_not_read(tmp_path: Path) -> None:
    weights = numpy_helper.from_array(np.ones((64, 32), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        initializer=[weights],
    )
    path = tmp_path / "model.onnx"
    onnx.save_model(
        helper.make_model(graph),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx_data",
        size_threshold=0,
    )
    (tmp_path / "model.onnx_data").unlink()  # a reader that opened it would fail
    tensor = OnnxModel.load(path).graph.initializers["w"]
    assert tensor.dims == (64, 32) and tensor.values is None


def test_new_nodes_are_encoded_as_onnx_helper_encodes_them() -> None:
    cases = [
        (("Identity", ["a"], ["b"]), {"name": "/b"}, {}),
        (
            ("MultiHeadAttention", ["q", "k", "v", "", "", "mask"], ["out"]),
            {"name": "n/MultiHeadAttention", "domain": "com.microsoft"},
            {"num_heads": 8, "scale": 0.1767767},
        ),
        (("Op", ["x"], ["y"]), {}, {"negative": -3, "big": 2**40}),
    ]
    for args, named, attributes in cases:
        ours = Node.new(*args, **named, **attributes).encode()  # type: ignore[arg-type]
        theirs = helper.make_node(*args, **named, **attributes).SerializeToString()
        assert ours == theirs, args[0]


def test_graph_edits_serialise_as_the_onnx_package_serialises_them() -> None:
    """Renamed outputs, appended nodes, a new opset import placed before later model fields."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    reference = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(reference, {"source": "test"})  # metadata_props, field 14 > 8
    model = OnnxModel(reference.SerializeToString())

    model.graph.nodes.append(Node.new("Identity", ["y"], ["y2"], name="/y2"))
    model.graph.outputs.append(model.graph.outputs[0].renamed("y2"))
    model.add_opset("com.microsoft", 1)
    model.add_opset("com.microsoft", 1)  # once only

    reference.graph.node.append(helper.make_node("Identity", ["y"], ["y2"], name="/y2"))
    output = copy.deepcopy(reference.graph.output[0])
    output.name = "y2"
    reference.graph.output.append(output)
    reference.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    assert model.encode() == reference.SerializeToString()


def test_nodes_inside_subgraphs_are_read() -> None:
    body = helper.make_graph(
        [helper.make_node("Add", ["outer", "outer"], ["r"])],
        "then",
        [],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1])],
    )
    graph = helper.make_graph(
        [helper.make_node("If", ["cond"], ["r"], then_branch=body, else_branch=body)],
        "g",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, [1])],
    )
    node = OnnxModel(helper.make_model(graph).SerializeToString()).graph.nodes[0]
    inner = [n.inputs for attr in node.attributes for g in attr.graphs for n in g.nodes]
    assert inner == [["outer", "outer"], ["outer", "outer"]]


def test_the_install_step_fuses_and_exposes_clip_skip_without_the_onnx_package(
    tmp_path: Path,
) -> None:
    """As the single binary runs it: ``onnx`` cannot be imported in the child."""
    folder = run_step_without_onnx("fuse", "sd-tiny", tmp_path)
    for part, blocks in {"text_encoder": 2, "unet": 8, "vae_decoder": 1, "vae_encoder": 1}.items():
        counts = count_ops(OnnxModel.load(folder / part / "model.onnx"), ["MultiHeadAttention"])
        assert counts == {"MultiHeadAttention": blocks}, part
    outputs = [o.name for o in OnnxModel.load(folder / "text_encoder" / "model.onnx").graph.outputs]
    assert "hidden_states.2" in outputs, outputs
