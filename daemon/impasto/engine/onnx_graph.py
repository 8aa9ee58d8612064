"""The nodes and initializers of an ONNX model's main graph, read with our small protobuf walker.

Run-time adapters need two things the ONNX Runtime API does not give: which initializer a node
named after a module (``/down_blocks.1/.../to_q/MatMul``) multiplies by, and that initializer's
values. Weights are located by offset and read only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from impasto.formats.protobuf import ProtobufError, read_mapped, repeated_varints, text
from impasto.formats.protobuf import fields as _fields
from impasto.formats.protobuf import varint as _varint

_FLOAT, _FLOAT16, _DOUBLE, _BFLOAT16 = 1, 10, 11, 16
_NUMPY: dict[int, type[np.generic]] = {
    _FLOAT: np.float32,
    _FLOAT16: np.float16,
    _DOUBLE: np.float64,
}


@dataclass
class Node:
    """One graph node: its name, operator, inputs, and its integer attributes."""

    name: str
    op_type: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    ints: dict[str, int] = field(default_factory=dict)


@dataclass
class Initializer:
    """Where one weight lives: inline bytes of the model file, or an external-data file."""

    name: str
    dims: tuple[int, ...]
    data_type: int
    raw: tuple[int, int] | None = None  # byte range inside the model file
    floats: tuple[int, int] | None = None  # packed float_data range
    location: str | None = None
    offset: int = 0
    length: int | None = None

    @property
    def dtype(self) -> type[np.generic]:
        """The numpy dtype of the stored values (bf16 is read as float32)."""
        return _NUMPY.get(self.data_type, np.float32)


def _node(buf: memoryview, start: int, end: int) -> Node:
    node = Node(name="", op_type="")
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1 and wire == 2:
            node.inputs.append(text(buf, s, e))
        elif number == 2 and wire == 2:
            node.outputs.append(text(buf, s, e))
        elif number == 3 and wire == 2:
            node.name = text(buf, s, e)
        elif number == 4 and wire == 2:
            node.op_type = text(buf, s, e)
        elif number == 5 and wire == 2:
            name, value = "", None
            for n, w, as_, ae in _fields(buf, s, e):
                if n == 1 and w == 2:
                    name = text(buf, as_, ae)
                elif n == 3 and w == 0:
                    value, _ = _varint(buf, as_, ae)
            if value is not None:
                node.ints[name] = value
    return node


def _external_entry(buf: memoryview, start: int, end: int, init: Initializer) -> None:
    """One ``key: value`` entry of TensorProto.external_data, stored on ``init``."""
    entry: dict[int, str] = {}
    for number, wire, s, e in _fields(buf, start, end):
        if wire == 2 and number in (1, 2):
            entry[number] = text(buf, s, e)
    key, value = entry.get(1, ""), entry.get(2, "")
    if key == "location":
        init.location = value
    elif key == "offset":
        init.offset = int(value)
    elif key == "length":
        init.length = int(value)


def read_tensor(buf: memoryview, start: int, end: int) -> Initializer:
    """The TensorProto at ``buf[start:end]``: where its values are, not the values."""
    dims: list[int] = []
    init = Initializer(name="", dims=(), data_type=0)
    for number, wire, s, e in _fields(buf, start, end):
        if number == 1:  # dims: packed, or one varint per field
            dims.extend(repeated_varints(buf, wire, s, e))
        elif number == 2 and wire == 0:
            init.data_type = _varint(buf, s, e)[0]
        elif number == 4 and wire == 2:
            init.floats = (s, e)
        elif number == 8 and wire == 2:
            init.name = text(buf, s, e)
        elif number == 9 and wire == 2:
            init.raw = (s, e)
        elif number == 13 and wire == 2:
            _external_entry(buf, s, e, init)
    init.dims = tuple(dims)
    return init


class OnnxGraph:
    """The main graph of ``path``: ``nodes`` in order and ``initializers`` by name."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.nodes: list[Node] = []
        self.initializers: dict[str, Initializer] = {}
        read_mapped(self.path, self._read)

    def _read(self, buf: memoryview) -> None:
        for number, wire, s, e in _fields(buf, 0, len(buf)):
            if number != 7 or wire != 2:  # ModelProto.graph
                continue
            for n, w, gs, ge in _fields(buf, s, e):
                if n == 1 and w == 2:
                    self.nodes.append(_node(buf, gs, ge))
                elif n == 5 and w == 2:
                    init = read_tensor(buf, gs, ge)
                    self.initializers[init.name] = init

    def resolve(self, name: str) -> str:
        """The initializer behind ``name``, following Identity nodes.

        Exporters store equal weights once (every LayerNorm starts as ones) and name the
        copies through Identity nodes.
        """
        producers = {n.name: n for n in self.nodes if n.op_type == "Identity"}
        outputs = {out: node for node in producers.values() for out in node.outputs}
        seen = 0
        while name not in self.initializers and name in outputs and seen < len(self.nodes):
            name, seen = outputs[name].inputs[0], seen + 1
        return name

    def stored(self, init: Initializer) -> bytes:
        """The bytes of ``init``'s values as the model or its external-data file holds them."""
        if init.location is not None:
            source = (self.path.parent / init.location).resolve()
            if not source.is_relative_to(self.path.parent.resolve()):
                raise ProtobufError(f"external data {init.location!r} leaves the model folder")
            with source.open("rb") as handle:
                handle.seek(init.offset)
                return handle.read(init.length) if init.length is not None else handle.read()
        with self.path.open("rb") as handle:
            span = init.raw or init.floats
            if span is None:
                raise ProtobufError(
                    f"initializer {init.name!r} stores its values in no known field"
                )
            handle.seek(span[0])
            return handle.read(span[1] - span[0])

    def array(self, name: str) -> np.ndarray:
        """The values of initializer ``name``, read from the model or its external data."""
        init = self.initializers[self.resolve(name)]
        raw = self.stored(init)
        if init.data_type == _BFLOAT16:
            values = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        elif init.data_type in _NUMPY:
            values = np.frombuffer(raw, np.dtype(init.dtype).newbyteorder("<"))
        else:
            raise ProtobufError(f"initializer {name!r} has unsupported data type {init.data_type}")
        return values.reshape(init.dims).copy()
