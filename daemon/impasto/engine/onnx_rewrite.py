"""What the graph rewrites (DeepCache's split, seamless tiling) share: a ModelProto taken apart
around its graph, and files written whole or not at all."""

from __future__ import annotations

import os
from pathlib import Path

from impasto.formats.protobuf import ProtobufError, varint

MODEL_GRAPH = 7
"""ModelProto's ``graph`` field."""


def model_without_graph(buf: memoryview) -> tuple[bytes, tuple[int, int]]:
    """The ModelProto's bytes except its graph field, and the graph's span."""
    rest = bytearray()
    graph_span: tuple[int, int] | None = None
    pos = 0
    while pos < len(buf):
        key_start = pos
        key, pos = varint(buf, pos, len(buf))
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, end = varint(buf, pos, len(buf))
        elif wire == 1:
            end = pos + 8
        elif wire == 2:
            length, pos = varint(buf, pos, len(buf))
            end = pos + length
        elif wire == 5:
            end = pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        if number == MODEL_GRAPH and wire == 2:
            graph_span = (pos, end)
        else:
            rest += buf[key_start:end]
        pos = end
    if graph_span is None:
        raise ProtobufError("the model file has no graph")
    return bytes(rest), graph_span


def write_parts(path: Path, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` one after another as ``path``, replacing it only once all are written."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                out.write(part)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
