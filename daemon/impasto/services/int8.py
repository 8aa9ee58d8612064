"""Dynamic int8 for a UNet graph, written without the ``onnx`` package (so the binary has it).

Every MatMul whose second input is a 2-D fp32 weight (and every Gemm that is such a MatMul
plus a bias) becomes com.microsoft's ``DynamicQuantizeMatMul``: the weight stored as int8
with one scale, the activations quantised to uint8 per call. The weights are quantised as
ONNX Runtime's ``quantize_dynamic`` does with ``weight_type=QInt8, reduce_range=True,
MatMulConstBOnly`` (symmetric, 7-bit range -64..64, scale = max|w| / 64, round half to even)
and the runtime fuses that tool's DynamicQuantizeLinear-MatMulInteger-Cast-Mul chains into
the same kernels, so both give the same outputs (tests/services/test_int8.py). Convolutions
stay fp32 (ORT's integer convolution is slower than its fp32 one on x86).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from impasto.engine.onnx_external import read_external_data_locations
from impasto.engine.onnx_graph import OnnxGraph, read_tensor
from impasto.formats.onnx_model import Graph, Node, OnnxModel, with_tensor
from impasto.formats.onnx_tensor import tensor_proto
from impasto.formats.protobuf import submessages

FLOAT, INT8 = 1, 3  # TensorProto.DataType
MS_DOMAIN = "com.microsoft"
QMIN, QMAX = -64, 64  # ONNX Runtime's reduced int8 range: 7-bit weights
DATA_FILE = "model.onnx.data"
# Weights at least this big go to the data file when the source keeps its weights outside
# (the onnx package's own size_threshold); smaller ones stay in the graph.
EXTERNAL_FROM = 1024


def quantize_weight(weight: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``weight`` as int8 values and their scale (the zero point is 0)."""
    absmax = max(abs(min(float(weight.min()), 0.0)), abs(max(float(weight.max()), 0.0)))
    scale64 = 2.0 * float(np.float32(absmax)) / (QMAX - QMIN)
    if scale64 < np.finfo(np.float32).tiny:
        return np.zeros(weight.shape, np.int8), np.float32(1.0)
    scale = np.float32(scale64)
    values = np.round(weight.astype(np.float32) / scale)
    return np.clip(values, -128, 127).astype(np.int8), scale


def _used_names(graph: Graph) -> Counter[str]:
    """How often each value is read: node inputs (in subgraphs too) and graph outputs."""
    uses: Counter[str] = Counter(out.name for out in graph.outputs)

    def walk(nodes: list[Node]) -> Iterator[str]:
        for node in nodes:
            yield from node.inputs
            for attr in node.attributes:
                for body in attr.graphs:
                    yield from walk(body.nodes)
                    yield from (out.name for out in body.outputs)

    uses.update(walk(graph.nodes))
    return uses


def _constant_weight(node: Node, weights: OnnxGraph) -> tuple[str, bool]:
    """The fp32 2-D weight ``node`` multiplies by, and whether it is used transposed; ``""``
    for a node that is not such a MatMul, or a Gemm that is one plus a bias of its width."""
    if node.domain or len(node.inputs) < 2:
        return "", False
    init = weights.initializers.get(node.inputs[1])
    if init is None or init.data_type != FLOAT or len(init.dims) != 2:
        return "", False
    if node.op_type == "MatMul" and len(node.inputs) == 2:
        return init.name, False
    if node.op_type != "Gemm" or any(
        (attr.f if attr.f is not None else attr.i) != {"alpha": 1, "beta": 1}.get(attr.name, 0)
        for attr in node.attributes
        if attr.name != "transB"
    ):
        return "", False
    transposed = any(attr.name == "transB" and attr.i == 1 for attr in node.attributes)
    width = init.dims[0] if transposed else init.dims[1]
    bias = weights.initializers.get(node.inputs[2]) if len(node.inputs) > 2 else None
    if len(node.inputs) > 2 and (bias is None or bias.dims != (width,)):
        return "", False
    return init.name, transposed


def quantize_matmuls(source: Path, target: Path) -> int:
    """Write the int8 copy of ``source`` to ``target`` (its data file beside it); the number
    of MatMuls quantised."""
    weights = OnnxGraph(source)
    model = OnnxModel.load(source)
    graph = model.graph
    made: dict[str, list[str]] = {}  # weight -> its int8 inputs, made once when shared
    replaced: set[str] = set()
    new: dict[str, np.ndarray] = {}
    nodes: list[Node] = []
    for node in graph.nodes:
        weight, transposed = _constant_weight(node, weights)
        if not weight:
            nodes.append(node)
            continue
        key = f"{weight}_Transposed" if transposed else weight
        if key not in made:
            values = weights.array(weight)
            values, scale = quantize_weight(values.T if transposed else values)
            names = [f"{key}_quantized", f"{key}_scale", f"{key}_zero_point"]
            new.update(zip(names, (values, np.array(scale), np.zeros((), np.int8)), strict=True))
            made[key] = names
        quantized = Node.new(
            "DynamicQuantizeMatMul",
            [node.inputs[0], *made[key], *node.inputs[2:]],
            node.outputs,
            name=node.name,
            domain=MS_DOMAIN,
        )
        nodes.append(quantized)
        replaced.add(weight)
    graph.nodes = nodes
    uses = _used_names(graph)
    for name in replaced:
        if not uses[name]:
            del graph.tensor_protos[name]
    model.add_opset(MS_DOMAIN, 1)
    _write(model, weights, new, target)
    return sum(node.op_type == "DynamicQuantizeMatMul" for node in nodes)


def _write(model: OnnxModel, weights: OnnxGraph, new: dict[str, np.ndarray], target: Path) -> None:
    """Save ``model`` with the ``new`` weights added. When the source keeps weights in data
    files, every external weight it keeps and every new one of EXTERNAL_FROM bytes or more go
    to one data file beside ``target`` (node attributes' tensors, small, go inline);
    otherwise the new ones are written inline."""
    graph = model.graph
    target.parent.mkdir(parents=True, exist_ok=True)
    if not read_external_data_locations(weights.path):
        for name, values in new.items():
            graph.tensor_protos[name] = _inline(name, values)
        model.save(target)
        return
    with (target.parent / DATA_FILE).open("wb") as data:

        def put(name: str, dims: tuple[int, ...], data_type: int, raw: bytes) -> bytes:
            entries = {"location": DATA_FILE, "offset": str(data.tell()), "length": str(len(raw))}
            data.write(raw)
            return tensor_proto(name, dims, data_type, external=entries)

        kept = {n: weights.initializers.get(n) for n in graph.tensor_protos}
        moved = {n: init for n, init in kept.items() if init is not None and init.location}
        graph.nodes = [_inline_attribute_tensors(node, weights) for node in graph.nodes]
        for name, init in moved.items():
            graph.tensor_protos[name] = put(name, init.dims, init.data_type, weights.stored(init))
        for name, values in new.items():
            raw = np.ascontiguousarray(values).tobytes()
            graph.tensor_protos[name] = (
                _inline(name, values)
                if values.nbytes < EXTERNAL_FROM
                else put(name, values.shape, INT8, raw)
            )
    model.save(target)
    left = set(read_external_data_locations(target)) - {DATA_FILE}
    if left:
        raise ValueError(f"the int8 graph still points at {sorted(left)}")


def _inline_attribute_tensors(node: Node, weights: OnnxGraph) -> Node:
    """``node`` with the tensors of its attributes that live in a data file (exporters write
    even a Constant's or a ConstantOfShape's value there) held inline instead."""
    attributes, changed = [], False
    for attr in node.attributes:
        raw = memoryview(attr.raw)
        spans = submessages(raw, 0, len(raw), 5)  # AttributeProto.t
        tensor = read_tensor(raw, *spans[0]) if len(spans) == 1 else None
        if tensor is not None and tensor.location:
            stored = weights.stored(tensor)
            inline = tensor_proto(tensor.name, tensor.dims, tensor.data_type, raw=stored)
            attr, changed = with_tensor(attr, inline), True
        attributes.append(attr)
    return replace(node, attributes=attributes, raw=None) if changed else node


def _inline(name: str, values: np.ndarray) -> bytes:
    data_type = INT8 if values.dtype == np.int8 else FLOAT
    raw = np.ascontiguousarray(values, values.dtype.newbyteorder("<")).tobytes()
    return tensor_proto(name, values.shape, data_type, raw=raw)
