"""What the graph rewrites (DeepCache's split, seamless tiling) share: a ModelProto taken apart
around its graph, files written whole or not at all, where a rewrite of a bundled model goes,
and what it records of its source to be redone when that changes."""

from __future__ import annotations

import hashlib
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
        if end > len(buf):
            raise ProtobufError("field runs past the end of the file (is it truncated?)")
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


def source_stats(model: Path, version: int) -> list[int]:
    """What a rewrite records of the graph it was made from (and of its own ``version``): it
    is redone when any of these changes, as after an install step rewrites the graph."""
    st = model.stat()
    return [version, st.st_size, st.st_mtime_ns]


def cache_folder(model: Path, cache_dir: Path, kind: str) -> Path:
    """Where a rewrite of ``kind`` of a graph with inline weights goes, so model folders (a
    bundled model above all) stay as shipped: one folder per graph under ``cache_dir``."""
    digest = hashlib.sha256(str(model.resolve()).encode()).hexdigest()[:16]
    return cache_dir / kind / digest
