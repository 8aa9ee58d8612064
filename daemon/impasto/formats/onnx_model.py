"""An ONNX model's main graph as editable nodes, written back without the ``onnx`` package.

The install's graph rewrites (fused attention, clip skip's extra outputs, int8 weights) change
the node list, the graph's outputs, its initializers and the opset imports. Everything else
(inputs, metadata, each initializer and node the rewrite keeps) is copied as the bytes it was,
so the single binary, which does not carry ``onnx``, rewrites graphs as the Python package
does.
New nodes and fields are encoded the way protobuf's own serializer orders them (by field
number), so the file equals what ``onnx.save_model`` writes for the same edit. Tensors
(initializers, attribute values) are read and written by formats/onnx_tensor.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from impasto.formats.onnx_tensor import Tensor, parse_tensor
from impasto.formats.protobuf import (
    ProtobufError,
    encode_key,
    encode_string,
    encode_varint,
    fields,
    int_field,
    length_delimited,
    repeated_varints,
    signed,
    string_field,
    submessages,
    text,
    varint,
)

# ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto and ValueInfoProto fields.
_MODEL_GRAPH, _MODEL_OPSET = 7, 8
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 5, 11, 12
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7


@dataclass
class Attribute:
    """One AttributeProto: the values a graph rewrite reads, and the message's bytes."""

    name: str
    raw: bytes
    f: float | None = None
    i: int | None = None
    ints: list[int] = field(default_factory=list)
    s: str | None = None
    t: Tensor | None = None
    graphs: list[Graph] = field(default_factory=list)


def _attribute(buf: memoryview, start: int, end: int) -> Attribute:
    attr = Attribute(name="", raw=bytes(buf[start:end]))
    for number, wire, s, e in fields(buf, start, end):
        if number == 1 and wire == 2:
            attr.name = text(buf, s, e)
        elif number == 2 and wire == 5:
            attr.f = struct.unpack("<f", buf[s:e])[0]
        elif number == 3 and wire == 0:
            attr.i = signed(varint(buf, s, e)[0])
        elif number == 8:
            attr.ints.extend(signed(v) for v in repeated_varints(buf, wire, s, e))
        elif number == 4 and wire == 2:
            attr.s = text(buf, s, e)
        elif number == 5 and wire == 2:
            attr.t = parse_tensor(buf, s, e)
        elif number in (6, 11) and wire == 2:  # g, graphs: If and Loop bodies
            attr.graphs.append(Graph(buf, s, e))
    return attr


def with_tensor(attr: Attribute, tensor: bytes) -> Attribute:
    """``attr`` holding the TensorProto ``tensor`` (AttributeProto.t) instead of its own."""
    buf = memoryview(attr.raw)
    parts = [
        length_delimited(5, tensor) if number == 5 else bytes(buf[head:end])
        for number, _, _, end, head in _whole_fields(buf, 0, len(buf))
    ]
    return replace(attr, raw=b"".join(parts), t=parse_tensor(memoryview(tensor), 0, len(tensor)))


def _encode_attribute(name: str, value: int | float) -> bytes:
    """An INT or FLOAT attribute, fields in the order protobuf writes them (1, 2|3, 20)."""
    if isinstance(value, int):
        body, kind = encode_key(3, 0) + encode_varint(value), _ATTR_INT
    else:
        body, kind = encode_key(2, 5) + struct.pack("<f", value), _ATTR_FLOAT
    return encode_string(1, name) + body + encode_key(20, 0) + encode_varint(kind)


def ints_attribute(name: str, values: list[int]) -> Attribute:
    """An INTS attribute of non-negative values (a ``Conv``'s ``pads``), as protobuf writes it."""
    if any(v < 0 for v in values):
        raise ValueError(f"{name}: only non-negative values are written here")
    body = b"".join(encode_key(8, 0) + encode_varint(v) for v in values)
    raw = encode_string(1, name) + body + encode_key(20, 0) + encode_varint(_ATTR_INTS)
    return Attribute(name=name, raw=raw, ints=list(values))


@dataclass
class Node:
    """One NodeProto. ``raw`` is its original encoding, written back as it was: a rewrite
    replaces nodes (``Node.new``) rather than changing the fields of one it keeps."""

    op_type: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    name: str = ""
    domain: str = ""
    attributes: list[Attribute] = field(default_factory=list)
    raw: bytes | None = None

    @classmethod
    def new(
        cls,
        op_type: str,
        inputs: list[str],
        outputs: list[str],
        *,
        name: str = "",
        domain: str = "",
        **attributes: int | float,
    ) -> Node:
        """A node as ``onnx.helper.make_node`` makes it: attributes sorted by name."""
        attrs = [
            Attribute(name=key, raw=_encode_attribute(key, value))
            for key, value in sorted(attributes.items())
        ]
        return cls(op_type, list(inputs), list(outputs), name, domain, attrs)

    def attribute(self, name: str) -> Attribute | None:
        return next((attr for attr in self.attributes if attr.name == name), None)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        parts = [encode_string(1, name) for name in self.inputs]
        parts += [encode_string(2, name) for name in self.outputs]
        parts += [encode_string(3, self.name)] if self.name else []
        parts.append(encode_string(4, self.op_type))
        parts += [length_delimited(5, attr.raw) for attr in self.attributes]
        parts += [encode_string(7, self.domain)] if self.domain else []
        return b"".join(parts)


def _node(buf: memoryview, start: int, end: int) -> Node:
    node = Node(op_type="", raw=bytes(buf[start:end]))
    for number, wire, s, e in fields(buf, start, end):
        if wire != 2:
            continue
        if number == 1:
            node.inputs.append(text(buf, s, e))
        elif number == 2:
            node.outputs.append(text(buf, s, e))
        elif number == 3:
            node.name = text(buf, s, e)
        elif number == 4:
            node.op_type = text(buf, s, e)
        elif number == 5:
            node.attributes.append(_attribute(buf, s, e))
        elif number == 7:
            node.domain = text(buf, s, e)
    return node


@dataclass
class ValueInfo:
    """A graph input or output: its name, element type (0: not a tensor) and bytes."""

    name: str
    elem_type: int
    raw: bytes

    def renamed(self, name: str) -> ValueInfo:
        """The same type and shape under another name."""
        buf = memoryview(self.raw)
        whole = _whole_fields(buf, 0, len(buf))
        rest = [bytes(buf[head:e]) for n, _, _, e, head in whole if n != 1]
        return ValueInfo(name, self.elem_type, encode_string(1, name) + b"".join(rest))


def _whole_fields(
    buf: memoryview, start: int, end: int
) -> Iterator[tuple[int, int, int, int, int]]:
    """Like ``fields``, with one more value last: where the field's key starts."""
    head = start
    for number, wire, s, e in fields(buf, start, end):
        yield number, wire, s, e, head
        head = e


def elem_type(buf: memoryview, start: int, end: int) -> int | None:
    """ValueInfoProto.type.tensor_type.elem_type; None for a value that is not a tensor."""
    for ts, te in submessages(buf, start, end, 2):  # type
        for tensor_start, tensor_end in submessages(buf, ts, te, 1):  # tensor_type
            return int_field(buf, tensor_start, tensor_end, 1)
    return None


def _value_info(buf: memoryview, start: int, end: int) -> ValueInfo:
    name = string_field(buf, start, end, 1)
    return ValueInfo(name, elem_type(buf, start, end) or 0, bytes(buf[start:end]))


class Graph:
    """A GraphProto's nodes, initializers (shape, type and inline values), inputs, outputs.

    ``tensor_protos`` holds each initializer's TensorProto as it will be written: a rewrite
    that drops or adds weights edits it (``initializers`` describes the ones read).
    """

    def __init__(self, buf: memoryview, start: int, end: int) -> None:
        self.nodes: list[Node] = []
        self.initializers: dict[str, Tensor] = {}
        self.tensor_protos: dict[str, bytes | memoryview] = {}
        self.inputs: list[ValueInfo] = []
        self.outputs: list[ValueInfo] = []
        # Every field as (number, its whole encoding: a view of the file's bytes, not a copy).
        self._fields: list[tuple[int, memoryview]] = []
        for number, wire, s, e, head in _whole_fields(buf, start, end):
            self._fields.append((number, buf[head:e]))
            if wire != 2:
                continue
            if number == _GRAPH_NODE:
                self.nodes.append(_node(buf, s, e))
            elif number == _GRAPH_INITIALIZER:
                name = string_field(buf, s, e, 8)
                self.initializers[name] = parse_tensor(buf, s, e)
                self.tensor_protos[name] = buf[s:e]
            elif number == _GRAPH_INPUT:
                self.inputs.append(_value_info(buf, s, e))
            elif number == _GRAPH_OUTPUT:
                self.outputs.append(_value_info(buf, s, e))

    def encode(self) -> bytes:
        """The graph with the current nodes, initializers and outputs; every other field as
        it was (new initializers go where protobuf orders them: after the graph's name)."""
        parts: list[bytes | memoryview] = []
        nodes_written = outputs_written = False
        initializers: list[bytes | memoryview] = []
        for tensor in self.tensor_protos.values():  # views of a big file's weights stay views
            initializers += [encode_key(_GRAPH_INITIALIZER, 2) + encode_varint(len(tensor)), tensor]
        for number, encoded in self._fields:
            if initializers and number >= _GRAPH_INITIALIZER:
                parts += initializers
                initializers = []
            if number == _GRAPH_INITIALIZER:
                continue
            if number == _GRAPH_NODE:
                if not nodes_written:
                    parts += [length_delimited(1, node.encode()) for node in self.nodes]
                    nodes_written = True
            elif number == _GRAPH_OUTPUT:
                if not outputs_written:
                    parts += [length_delimited(12, out.raw) for out in self.outputs]
                    outputs_written = True
            else:
                parts.append(encoded)
        if not nodes_written:
            parts[:0] = [length_delimited(1, node.encode()) for node in self.nodes]
        parts += initializers
        if not outputs_written:
            parts += [length_delimited(12, out.raw) for out in self.outputs]
        return b"".join(parts)


class OnnxModel:
    """A ModelProto whose main graph can be edited and written back."""

    def __init__(self, data: bytes) -> None:
        buf = memoryview(data)
        self._fields: list[tuple[int, memoryview]] = []  # views of ``data``, as in Graph
        self.opsets: list[tuple[str, int]] = []
        graph: Graph | None = None
        for number, wire, s, e, head in _whole_fields(buf, 0, len(buf)):
            self._fields.append((number, buf[head:e]))
            if number == _MODEL_GRAPH and wire == 2:
                graph = Graph(buf, s, e)
            elif number == _MODEL_OPSET and wire == 2:
                domain, version = "", 0
                for n, w, os_, oe in fields(buf, s, e):
                    if n == 1 and w == 2:
                        domain = text(buf, os_, oe)
                    elif n == 2 and w == 0:
                        version = signed(varint(buf, os_, oe)[0])
                self.opsets.append((domain, version))
        if graph is None:
            raise ProtobufError("not an ONNX model: no graph")
        self.graph = graph
        self._opsets_read = len(self.opsets)

    @classmethod
    def load(cls, path: Path) -> OnnxModel:
        """The model file alone: external data files are neither read nor needed."""
        return cls(Path(path).read_bytes())

    def add_opset(self, domain: str, version: int) -> None:
        if all(name != domain for name, _ in self.opsets):
            self.opsets.append((domain, version))

    def encode(self) -> bytes:
        parts: list[bytes | memoryview] = []
        new = [_opset_import(name, v) for name, v in self.opsets[self._opsets_read :]]
        for number, encoded in self._fields:
            if new and number > _MODEL_OPSET:  # after the last opset import, in field order
                parts += new
                new = []
            if number == _MODEL_GRAPH:
                parts.append(length_delimited(_MODEL_GRAPH, self.graph.encode()))
            else:
                parts.append(encoded)
        parts += new
        return b"".join(parts)

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.encode())


def _opset_import(domain: str, version: int) -> bytes:
    """A ModelProto's opset_import field for ``domain`` at ``version``."""
    body = encode_string(1, domain) + encode_key(2, 0) + encode_varint(version)
    return length_delimited(_MODEL_OPSET, body)
