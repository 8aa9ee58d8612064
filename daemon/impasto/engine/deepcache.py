"""DeepCache: split an ONNX UNet so neighbouring steps can reuse its deep features.

DeepCache (Ma et al., 2023; the ``DeepCacheSDHelper`` at branch 0) runs the whole UNet on
"full" steps and remembers the hidden state that enters the last resnet of the last up block;
on the steps between, only the shallow path runs: ``conv_in``, the time embedding, that last
resnet (fed the remembered state concatenated with the fresh ``conv_in`` output, its skip),
what follows it in the block, and the output head.

The split is a cut of the ONNX graph, found by structure rather than by node names, so it works
on our converter's exports and on public ONNX builds alike: the skip of that last resnet is the
one ``Concat`` that consumes ``conv_in``'s output, and the remembered state is its other input.
Two graphs are written beside ``unet/model.onnx`` (external-data paths stay valid there):

- ``deepcache-full.onnx``: the UNet with the remembered state as a second output;
- ``deepcache-shallow.onnx``: the nodes the output needs once that state is an input.

Both are protobuf rewrites by byte ranges (weights are copied or referenced, never decoded), so
the ``onnx`` package is not needed and a split takes about as long as copying the graph file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from impasto.engine.onnx_external import read_external_data_locations
from impasto.engine.onnx_rewrite import (
    MODEL_GRAPH,
    cache_folder,
    model_without_graph,
    source_stats,
    write_parts,
)
from impasto.formats.protobuf import (
    ProtobufError,
    encode_varint,
    fields,
    length_delimited,
    read_mapped,
    string_field,
    text,
    varint,
)

FULL_FILE = "deepcache-full.onnx"
SHALLOW_FILE = "deepcache-shallow.onnx"
INFO_FILE = "deepcache.json"
FORMAT = 1  # bump when the cut changes, so old splits are redone
_G_NODE, _G_INIT, _G_INPUT, _G_OUTPUT, _G_VALUE_INFO = 1, 5, 11, 12, 13
_PASS_THROUGH = {"Cast", "Identity"}  # ops that may sit between conv_in and its consumers


class DeepCacheError(Exception):
    """The UNet cannot be split for DeepCache; the message says why."""


@dataclass(frozen=True)
class DeepCacheSplit:
    """The two graphs of a split UNet and the name of the tensor passed between them."""

    full: Path
    shallow: Path
    feature: str
    shallow_initializers: frozenset[str]


@dataclass
class _Node:
    span: tuple[int, int]
    op_type: str = ""
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


@dataclass
class _Graph:
    nodes: list[_Node] = field(default_factory=list)
    initializers: dict[str, tuple[int, int]] = field(default_factory=dict)
    init_types: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, tuple[int, int]] = field(default_factory=dict)
    outputs: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    other: list[tuple[int, int, int]] = field(default_factory=list)  # (field, start, end)


def _read_graph(buf: memoryview, s: int, e: int) -> _Graph:
    graph = _Graph()
    for number, wire, fs, fe in fields(buf, s, e):
        if number == _G_NODE and wire == 2:
            node = _Node((fs, fe))
            for n, w, ns, ne in fields(buf, fs, fe):
                if n == 1 and w == 2:
                    node.inputs.append(text(buf, ns, ne))
                elif n == 2 and w == 2:
                    node.outputs.append(text(buf, ns, ne))
                elif n == 4 and w == 2:
                    node.op_type = text(buf, ns, ne)
            graph.nodes.append(node)
        elif number == _G_INIT and wire == 2:
            name = string_field(buf, fs, fe, 8)
            graph.initializers[name] = (fs, fe)
            for n, w, ns, ne in fields(buf, fs, fe):
                if n == 2 and w == 0:
                    graph.init_types[name] = varint(buf, ns, ne)[0]
        elif number == _G_INPUT and wire == 2:
            graph.inputs[string_field(buf, fs, fe, 1)] = (fs, fe)
        elif number == _G_OUTPUT and wire == 2:
            graph.outputs.append((string_field(buf, fs, fe, 1), (fs, fe)))
        elif number != _G_VALUE_INFO:  # value_info is optional; ORT infers shapes again
            graph.other.append((number, fs, fe))
    return graph


# ---------------------------------------------------------------- protobuf writing


def _tensor_value_info(name: str, elem_type: int) -> bytes:
    """A ValueInfoProto of a rank-4 tensor with every dimension dynamic."""
    dims = b"".join(
        length_delimited(1, length_delimited(2, f"deepcache_{axis}".encode())) for axis in "nchw"
    )
    tensor = encode_varint(1 << 3) + encode_varint(elem_type) + length_delimited(2, dims)
    return length_delimited(1, name.encode()) + length_delimited(2, length_delimited(1, tensor))


# ---------------------------------------------------------------- the cut


def _consumers(graph: _Graph) -> dict[str, list[_Node]]:
    found: dict[str, list[_Node]] = {}
    for node in graph.nodes:
        for name in node.inputs:
            found.setdefault(name, []).append(node)
    return found


def _find_cut(graph: _Graph) -> tuple[str, int]:
    """The remembered tensor's name and its element type."""
    consumers = _consumers(graph)
    frontier = ["sample"]
    conv_in: _Node | None = None
    while frontier and conv_in is None:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.op_type == "Conv":
                conv_in = node
                break
            if node.op_type in _PASS_THROUGH:
                frontier.extend(node.outputs)
    if conv_in is None:
        raise DeepCacheError("no Conv reads the UNet's sample input (conv_in not found)")
    skip = conv_in.outputs[0]
    reads = {skip}
    for node in consumers.get(skip, []):  # conv_in's output may be cast before its uses
        if node.op_type in _PASS_THROUGH:
            reads.update(node.outputs)
    concats = [
        n for n in graph.nodes if n.op_type == "Concat" and any(i in reads for i in n.inputs)
    ]
    if len(concats) != 1 or len(concats[0].inputs) != 2:
        raise DeepCacheError(
            f"expected one two-input Concat reading conv_in's output, found {len(concats)}"
        )
    feature = next(i for i in concats[0].inputs if i not in reads)
    weight = conv_in.inputs[1] if len(conv_in.inputs) > 1 else ""
    elem_type = graph.init_types.get(weight, 1)
    return feature, elem_type


def _needed_nodes(graph: _Graph, output: str, cut: str) -> tuple[list[_Node], set[str]]:
    """The nodes ``output`` depends on when ``cut`` is given, and the names they read."""
    producer = {out: node for node in graph.nodes for out in node.outputs}
    wanted, seen, names = [output], set(), set()
    kept: set[int] = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        names.add(name)
        node = producer.get(name)
        if name == cut or node is None:
            continue
        kept.add(id(node))
        wanted.extend(i for i in node.inputs if i)
    return [n for n in graph.nodes if id(n) in kept], names


def _split(model: Path, full: Path, shallow: Path) -> tuple[str, frozenset[str]]:
    return read_mapped(model, lambda buf: _split_mapped(buf, full, shallow))


def _split_mapped(buf: memoryview, full: Path, shallow: Path) -> tuple[str, frozenset[str]]:
    head, (gs, ge) = model_without_graph(buf)
    graph = _read_graph(buf, gs, ge)
    if not graph.outputs:
        raise DeepCacheError("the UNet graph has no output")
    feature, elem_type = _find_cut(graph)
    out_name = graph.outputs[0][0]
    extra_output = length_delimited(_G_OUTPUT, _tensor_value_info(feature, elem_type))
    full_graph_len = (ge - gs) + len(extra_output)
    graph_key = encode_varint(MODEL_GRAPH << 3 | 2) + encode_varint(full_graph_len)
    with buf[gs:ge] as graph_bytes:  # released before the mapping closes, even on error
        write_parts(full, [head, graph_key, graph_bytes, extra_output])

    nodes, names = _needed_nodes(graph, out_name, feature)
    if feature not in names:
        raise DeepCacheError("the UNet's output does not depend on the cut")
    body = bytearray()
    for number, fs, fe in graph.other:  # name, doc string, sparse initializers...
        body += length_delimited(number, bytes(buf[fs:fe]))
    for node in nodes:
        body += length_delimited(_G_NODE, bytes(buf[node.span[0] : node.span[1]]))
    kept = frozenset(n for n in graph.initializers if n in names)
    for name in kept:
        s, e = graph.initializers[name]
        body += length_delimited(_G_INIT, bytes(buf[s:e]))
    for name, (s, e) in graph.inputs.items():
        if name in names and name not in graph.initializers:
            body += length_delimited(_G_INPUT, bytes(buf[s:e]))
    body += length_delimited(_G_INPUT, _tensor_value_info(feature, elem_type))
    s, e = graph.outputs[0][1]
    body += length_delimited(_G_OUTPUT, bytes(buf[s:e]))
    write_parts(shallow, [head, length_delimited(MODEL_GRAPH, bytes(body))])
    return feature, kept


def split_unet(model: Path, fallback_dir: Path | None = None) -> DeepCacheSplit:
    """The DeepCache graphs of ``model`` (a UNet's ``model.onnx``), split now or reused.

    The split is redone when ``model.onnx`` changes (size or mtime), as after an install step
    rewrites it. A split made beside the model (at install) is reused. Otherwise a graph whose
    weights are all inline is split into ``fallback_dir`` when one is given, so model folders
    (a bundled model above all) stay as shipped; one with external weights is split beside
    them. Raises DeepCacheError when the graph has no recognisable cut or the split cannot be
    written.
    """
    model = Path(model)
    found = _reuse(model, model.parent)
    if found is not None:
        return found
    if fallback_dir is not None and not read_external_data_locations(model):
        folder = cache_folder(model, fallback_dir, "deepcache")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeepCacheError(f"cannot write the DeepCache split in {folder} ({exc})") from exc
        return _split_in(model, folder)
    return _split_in(model, model.parent)


def _reuse(model: Path, folder: Path) -> DeepCacheSplit | None:
    """The split in ``folder`` when it was made from ``model`` as it is now."""
    full, shallow, info_file = folder / FULL_FILE, folder / SHALLOW_FILE, folder / INFO_FILE
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        isinstance(info, dict)
        and info.get("source") == source_stats(model, FORMAT)
        and full.is_file()
        and shallow.is_file()
    ):
        return DeepCacheSplit(
            full, shallow, str(info["feature"]), frozenset(info.get("initializers", []))
        )
    return None


def _split_in(model: Path, folder: Path) -> DeepCacheSplit:
    found = _reuse(model, folder)
    if found is not None:
        return found
    full, shallow, info_file = folder / FULL_FILE, folder / SHALLOW_FILE, folder / INFO_FILE
    try:
        feature, kept = _split(model, full, shallow)
        source = source_stats(model, FORMAT)
        record = {"source": source, "feature": feature, "initializers": sorted(kept)}
        info_file.write_text(json.dumps(record), encoding="utf-8")
    except ProtobufError as exc:
        raise DeepCacheError(f"{model}: not a readable ONNX model ({exc})") from exc
    except OSError as exc:
        raise DeepCacheError(f"cannot write the DeepCache split beside {model} ({exc})") from exc
    return DeepCacheSplit(full, shallow, feature, kept)
