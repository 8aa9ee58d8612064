"""List the external-data files an ONNX model points at, with the tiny protobuf reader of formats.

The ``onnx`` package is not a runtime dependency, and only a handful of ONNX fields can hold
tensors, so walking those few paths by field number is simpler than shipping the full schema.
Large fields (weights stored inline) are skipped by offset, never copied, so a 2 GB model costs
only a pass over its message headers.
"""

from __future__ import annotations

from pathlib import Path

from impasto.formats.protobuf import ProtobufError, read_mapped
from impasto.formats.protobuf import fields as _fields

# (message kind, field number) -> kind of the sub-message found there. Only the fields on a path
# from ModelProto down to a TensorProto are listed; everything else is skipped.
_CHILDREN: dict[tuple[str, int], str] = {
    ("model", 7): "graph",  # ModelProto.graph
    ("model", 25): "function",  # ModelProto.functions
    ("graph", 1): "node",  # GraphProto.node
    ("graph", 5): "tensor",  # GraphProto.initializer
    ("graph", 15): "sparse",  # GraphProto.sparse_initializer
    ("function", 7): "node",  # FunctionProto.node
    ("node", 5): "attribute",  # NodeProto.attribute
    ("attribute", 5): "tensor",  # AttributeProto.t
    ("attribute", 6): "graph",  # AttributeProto.g
    ("attribute", 10): "tensor",  # AttributeProto.tensors
    ("attribute", 11): "graph",  # AttributeProto.graphs
    ("attribute", 22): "sparse",  # AttributeProto.sparse_tensor
    ("attribute", 23): "sparse",  # AttributeProto.sparse_tensors
    ("sparse", 1): "tensor",  # SparseTensorProto.values
    ("sparse", 2): "tensor",  # SparseTensorProto.indices
}
_TENSOR_EXTERNAL_DATA = 13  # TensorProto.external_data: repeated StringStringEntryProto
_ENTRY_KEY, _ENTRY_VALUE = 1, 2
_MAX_DEPTH = 64  # subgraphs nest (If/Loop bodies); a deeper file is malformed or hostile


def _external_location(buf: memoryview | bytes, start: int, end: int) -> str | None:
    """The ``location`` entry of a TensorProto's external_data, or None when it has none."""
    location = None
    for number, wire, s, e in _fields(buf, start, end):
        if number != _TENSOR_EXTERNAL_DATA or wire != 2:
            continue
        key = value = None
        for n, w, es, ee in _fields(buf, s, e):
            if w == 2 and n == _ENTRY_KEY:
                key = bytes(buf[es:ee]).decode("utf-8", "replace")
            elif w == 2 and n == _ENTRY_VALUE:
                value = bytes(buf[es:ee]).decode("utf-8", "replace")
        if key == "location":
            location = value
    return location


def _walk(
    buf: memoryview | bytes, kind: str, start: int, end: int, depth: int, out: list[str]
) -> None:
    if depth > _MAX_DEPTH:
        raise ProtobufError("subgraphs nested too deep")
    if kind == "tensor":
        location = _external_location(buf, start, end)
        if location is not None:
            out.append(location)
        return
    for number, wire, s, e in _fields(buf, start, end):
        child = _CHILDREN.get((kind, number))
        if child is not None and wire == 2:
            _walk(buf, child, s, e, depth + 1, out)


def external_data_locations(data: bytes | memoryview) -> list[str]:
    """Every external-data ``location`` named by the tensors of a serialized ONNX ModelProto."""
    out: list[str] = []
    _walk(data, "model", 0, len(data), 0, out)
    return out


def read_external_data_locations(path: Path) -> list[str]:
    """Like :func:`external_data_locations` for a file, memory-mapped so weights are not read."""
    return read_mapped(path, external_data_locations)
