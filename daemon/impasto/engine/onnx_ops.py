"""What an ONNX file asks of the runtime: its operators, opset versions and float precision.

Read with the protobuf walker of :mod:`impasto.formats.protobuf`, skipping weights by offset,
so a multi-gigabyte graph costs a pass over its message headers and nothing needs the ``onnx``
package. Subgraphs (If/Loop bodies) and model-local functions are walked too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from impasto.formats.onnx_model import elem_type
from impasto.formats.protobuf import ProtobufError, int_field, read_mapped, text
from impasto.formats.protobuf import fields as _fields
from impasto.formats.protobuf import varint as _varint

Reader = Callable[[int, int], bytes]  # (offset, length) -> at most length bytes from offset

ONNX_DOMAIN = ""  # "ai.onnx" is the same domain under its long name
_FLOAT_TYPES = {1: "fp32", 10: "fp16", 11: "fp64", 16: "bf16"}
_MAX_DEPTH = 64


def domain_name(domain: str) -> str:
    """The one spelling of a domain: "" for the standard ONNX operators."""
    return ONNX_DOMAIN if domain in ("", "ai.onnx") else domain


@dataclass
class GraphOps:
    """Operators by (domain, op_type), the opset imported per domain, and float tensor counts."""

    ops: set[tuple[str, str]] = field(default_factory=set)
    opsets: dict[str, int] = field(default_factory=dict)
    functions: set[tuple[str, str]] = field(default_factory=set)  # defined in the model itself
    floats: Counter[str] = field(default_factory=Counter)  # initializers and graph inputs by type

    @property
    def precision(self) -> str:
        """fp16 when most float tensors are fp16, fp32 otherwise, "" when it has none."""
        if not self.floats:
            return ""
        return self.floats.most_common(1)[0][0]

    def merge(self, other: GraphOps) -> None:
        """Add another graph's needs (a pipeline is several graphs)."""
        self.ops |= other.ops
        self.functions |= other.functions
        self.floats.update(other.floats)
        for domain, version in other.opsets.items():
            self.opsets[domain] = max(version, self.opsets.get(domain, 0))


def _node(buf: memoryview, start: int, end: int, out: GraphOps, depth: int) -> None:
    op_type, domain = "", ""
    for n, w, s, e in _fields(buf, start, end):
        if n == 4 and w == 2:
            op_type = text(buf, s, e)
        elif n == 7 and w == 2:
            domain = text(buf, s, e)
        elif n == 5 and w == 2:  # attribute: subgraphs live in g (6) and graphs (11)
            for an, aw, as_, ae in _fields(buf, s, e):
                if an in (6, 11) and aw == 2:
                    _graph(buf, as_, ae, out, depth + 1)
    out.ops.add((domain_name(domain), op_type))


def _graph(buf: memoryview, start: int, end: int, out: GraphOps, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ProtobufError("subgraphs nested too deep")
    for n, w, s, e in _fields(buf, start, end):
        if w != 2:
            continue
        if n == 1:  # node
            _node(buf, s, e, out, depth)
        elif n == 5:  # initializer: TensorProto.data_type is field 2
            kind = _FLOAT_TYPES.get(int_field(buf, s, e, 2) or 0)
            if kind:
                out.floats[kind] += 1
        elif n == 11 and depth == 0:  # the main graph's inputs
            kind = _FLOAT_TYPES.get(elem_type(buf, s, e) or 0)
            if kind:
                out.floats[kind] += 1


def _opset(buf: memoryview, start: int, end: int) -> tuple[str, int]:
    domain, version = "", 0
    for n, w, s, e in _fields(buf, start, end):
        if n == 1 and w == 2:
            domain = text(buf, s, e)
        elif n == 2 and w == 0:
            version = _varint(buf, s, e)[0]
    return domain_name(domain), version


def graph_ops(data: bytes | memoryview) -> GraphOps:
    """The needs of a serialized ModelProto."""
    buf = memoryview(data)
    out = GraphOps()
    for n, w, s, e in _fields(buf, 0, len(buf)):
        if n == 7 and w == 2:  # graph
            _graph(buf, s, e, out, 0)
        elif n == 8 and w == 2:  # opset_import
            domain, version = _opset(buf, s, e)
            out.opsets[domain] = max(version, out.opsets.get(domain, 0))
        elif n == 25 and w == 2:  # functions: their bodies' ops count, their names are local
            name, domain = "", ""
            for fn, fw, fs, fe in _fields(buf, s, e):
                if fn == 1 and fw == 2:
                    name = text(buf, fs, fe)
                elif fn == 10 and fw == 2:
                    domain = text(buf, fs, fe)
                elif fn == 7 and fw == 2:
                    _node(buf, fs, fe, out, 1)
            out.functions.add((domain_name(domain), name))
    out.ops -= out.functions
    return out


def read_graph_ops(path: Path) -> GraphOps:
    """Like :func:`graph_ops` for a file, memory-mapped so inline weights are never read."""
    return read_mapped(path, graph_ops)


class _NeedMore(Exception):
    """The head read so far ends inside the graph's node list."""


def _header(buf: memoryview, pos: int, end: int) -> tuple[int, int, int, int]:
    """(field number, wire type, value start, value end) of the field at ``pos``."""
    key, pos = _varint(buf, pos, end)
    number, wire = key >> 3, key & 7
    if wire == 0:
        _, value_end = _varint(buf, pos, end)
        return number, wire, pos, value_end
    if wire == 1:
        return number, wire, pos, pos + 8
    if wire == 2:
        length, pos = _varint(buf, pos, end)
        return number, wire, pos, pos + length
    if wire == 5:
        return number, wire, pos, pos + 4
    raise ProtobufError(f"unsupported wire type {wire}")


def _head_graph(buf: memoryview, start: int, end: int, out: GraphOps) -> None:
    """The nodes of a graph whose bytes may stop after its node list (weights follow nodes)."""
    pos, nodes_done = start, False
    while pos < min(end, len(buf)):
        try:
            number, wire, s, e = _header(buf, pos, len(buf))
        except ProtobufError:
            if nodes_done:
                return
            raise _NeedMore from None
        if e > len(buf):  # this field runs past what was read
            if number == 1 and not nodes_done:
                raise _NeedMore
            return
        if number == 1 and wire == 2:
            _node(buf, s, e, out, 0)
        else:
            nodes_done = True
            if number == 5 and wire == 2:
                kind = _FLOAT_TYPES.get(int_field(buf, s, e, 2) or 0)
                if kind:
                    out.floats[kind] += 1
        pos = e
    if not nodes_done and end > len(buf):
        raise _NeedMore


def _from_head(head: memoryview, read: Reader, size: int) -> GraphOps:
    out = GraphOps()
    pos = 0
    while pos < len(head):
        try:
            number, wire, s, e = _header(head, pos, len(head))
        except ProtobufError:
            raise _NeedMore from None
        if number == 7 and wire == 2:
            _head_graph(head, s, e, out)
            if e > size:
                raise ProtobufError("the graph runs past the end of the file")
            tail = memoryview(read(e, size - e)) if e < size else memoryview(b"")
            for n, w, fs, fe in _fields(tail, 0, len(tail)):
                if n == 8 and w == 2:
                    domain, version = _opset(tail, fs, fe)
                    out.opsets[domain] = max(version, out.opsets.get(domain, 0))
                elif n == 25 and w == 2:
                    functions = graph_ops(_function_model(tail, fs, fe))
                    out.ops |= functions.ops
                    out.functions |= functions.functions
            out.ops -= out.functions
            out.floats.clear()  # the graph's inputs and most initializers were not read
            return out
        if e > len(head):
            raise _NeedMore
        if number == 8 and wire == 2:  # opset_import before the graph (unusual, but legal)
            domain, version = _opset(head, s, e)
            out.opsets[domain] = max(version, out.opsets.get(domain, 0))
        pos = e
    raise _NeedMore


def _function_model(buf: memoryview, start: int, end: int) -> bytes:
    """A ModelProto holding one FunctionProto (field 25), for :func:`graph_ops` to walk."""
    body = bytes(buf[start:end])
    length, out = len(body), bytearray()
    while True:  # varint of the length
        byte = length & 0x7F
        length >>= 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            break
    return b"\xca\x01" + bytes(out) + body  # the key of field 25, length-delimited


def peek_graph_ops(read: Reader, size: int, first: int = 1 << 20) -> GraphOps:
    """The needs of an ONNX file of ``size`` bytes read through ``read`` without its weights.

    Serializers write a graph's nodes before its initializers, and a model's opset imports
    after its graph, so the head of the file (grown until the node list ends) and the bytes
    after the graph are enough even when the weights are stored inline.
    """
    want = first
    while True:
        head = memoryview(read(0, min(want, size)))
        if len(head) >= size:
            return graph_ops(head)
        try:
            return _from_head(head, read, size)
        except _NeedMore:
            want *= 4
