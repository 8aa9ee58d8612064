"""Seamless tiling (A1111's ``tiling``): every convolution pads by wrapping around the picture.

AUTOMATIC1111 sets ``padding_mode="circular"`` on every ``Conv2d`` of the UNet and the VAE, so
the picture's left edge continues its right edge and its top its bottom: it tiles without a
seam. One axis alone (InvokeAI's seamless X or Y, A1111's asymmetric tiling extension) wraps
that axis and pads the other with zeros as before. ONNX's ``Pad`` wraps only from opset 19
and our exports are opset 18, so each padded ``Conv`` is rewritten here: its input is
extended with ``Slice``s of its own far edges (``Concat`` along the height, then the width,
which fills the corners from the opposite corner as circular padding does) and the ``Conv``
itself pads no more along a wrapping axis.

The rewrite edits the graph with formats/onnx_model.py (weights copied as bytes, never
decoded), keeps every initializer's name, so LoRA overrides apply to the wrapping graph as to
the plain one, and writes the graph once: ``seamless.onnx`` (``seamless-x.onnx``,
``seamless-y.onnx`` for one axis) beside the model (external-data paths stay valid there), or
in the cache folder for a graph whose weights are inline.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from impasto.engine.onnx_external import read_external_data_locations
from impasto.engine.onnx_ops import domain_name
from impasto.engine.onnx_rewrite import cache_folder, source_stats, write_parts
from impasto.engine.types import InvalidRequestError
from impasto.formats.onnx_model import Graph, Node, OnnxModel, ints_attribute
from impasto.formats.onnx_tensor import tensor_proto
from impasto.formats.protobuf import ProtobufError

FILE, INFO_FILE = "seamless.onnx", "seamless.json"
BOTH = "xy"
AXES = ("x", "y", BOTH)
"""What can wrap: the width (x), the height (y) or both."""
FORMAT = 1  # bump when the rewrite changes, so old graphs are redone
_INT64 = 7  # TensorProto.INT64
_INT64_MAX = (1 << 63) - 1
_NCHW_CONVS = {"Conv", "FusedConv", "ConvInteger", "QLinearConv"}
"""Convolutions over NCHW whose first input is the image: wrapped by slicing it."""
_CHANNELS_LAST = {"NhwcConv", "NhwcFusedConv"}


class SeamlessError(Exception):
    """The graph cannot be made to tile; the message says why."""


def _constant(graph: Graph, value: int) -> str:
    """The name of a one-element int64 initializer holding ``value`` (added once)."""
    name = f"impasto_seamless/{value}"
    if name not in graph.tensor_protos:
        raw = np.array([value], dtype="<i8").tobytes()
        graph.tensor_protos[name] = tensor_proto(name, (1,), _INT64, raw=raw)
    return name


def tiling_axes(tiling: bool | str) -> str:
    """The axes a request's ``tiling`` wraps: "" (none), "x", "y" or "xy" (``True``)."""
    if tiling is True:
        return BOTH
    if not tiling:
        return ""
    if tiling not in AXES:
        raise InvalidRequestError("tiling", f"{tiling!r} is not true, false, 'x' or 'y'")
    return str(tiling)


def _files(axes: str) -> tuple[str, str]:
    """The graph's and its info's file names for ``axes`` (both: the original names)."""
    if axes == BOTH:
        return FILE, INFO_FILE
    return f"seamless-{axes}.onnx", f"seamless-{axes}.json"


def _wrapped(graph: Graph, x: str, pads: list[int], prefix: str) -> tuple[list[Node], str]:
    """Nodes extending ``x`` by ``pads`` (top, left, bottom, right) from its far edges, and
    the name of the extended tensor."""
    nodes: list[Node] = []

    def edge(start: int, end: int, axis: int, out: str) -> str:
        ends = [_constant(graph, v) for v in (start, end, axis)]
        nodes.append(Node.new("Slice", [x, *ends], [out], name=out))
        return out

    for axis, before, after in ((2, pads[0], pads[2]), (3, pads[1], pads[3])):
        if not before and not after:
            continue
        # The last ``before`` rows (or columns) go in front, the first ``after`` behind.
        parts = [edge(-before, _INT64_MAX, axis, f"{prefix}/{axis}b")] if before else []
        parts.append(x)
        parts += [edge(0, after, axis, f"{prefix}/{axis}a")] if after else []
        x = f"{prefix}/{axis}"
        nodes.append(Node.new("Concat", parts, [x], name=x, axis=axis))
    return nodes, x


def _rewrite(model: OnnxModel, axes: str = BOTH) -> None:
    """Make every padded convolution of ``model``'s graph wrap around along ``axes``."""
    opset = max((v for d, v in model.opsets if domain_name(d) == ""), default=0)
    if opset < 10:
        raise SeamlessError(f"the graph's opset is {opset}; Slice with inputs needs 10")
    graph = model.graph
    nodes: list[Node] = []
    for index, node in enumerate(graph.nodes):
        if node.op_type in _CHANNELS_LAST:
            raise SeamlessError(f"a channels-last {node.op_type} node cannot be made to wrap")
        if node.op_type not in _NCHW_CONVS or domain_name(node.domain) not in ("", "com.microsoft"):
            nodes.append(node)
            continue
        pads = node.attribute("pads")
        auto_pad = node.attribute("auto_pad")
        if auto_pad is not None and auto_pad.s not in (None, "NOTSET", "VALID"):
            raise SeamlessError(f"a {node.op_type} node pads itself ({auto_pad.s})")
        if pads is None or not any(pads.ints):
            nodes.append(node)
            continue
        if len(pads.ints) != 4:
            raise SeamlessError(f"a {node.op_type} node over {len(pads.ints) // 2} dimensions")
        # pads are (top, left, bottom, right): y wraps the first and third, x the others.
        wraps = [("y" in axes, "x" in axes)[i % 2] for i in range(4)]
        wrap = [pad if w else 0 for pad, w in zip(pads.ints, wraps, strict=True)]
        zero = [0 if w else pad for pad, w in zip(pads.ints, wraps, strict=True)]
        if not any(wrap):
            nodes.append(node)
            continue
        prefix = f"impasto_seamless/{node.name or index}"
        wrapping, x = _wrapped(graph, node.inputs[0], wrap, prefix)
        kept = [attr for attr in node.attributes if attr.name != "pads"]
        if any(zero):  # the other axis still pads with zeros
            kept.append(ints_attribute("pads", zero))
        inputs = [x, *node.inputs[1:]]
        nodes += [*wrapping, Node(node.op_type, inputs, node.outputs, node.name, node.domain, kept)]
    graph.nodes = nodes


def seamless_graph(model: Path, cache_dir: Path | None = None, axes: str = BOTH) -> Path:
    """The graph of ``model`` (a UNet's or VAE's ``model.onnx``) wrapping along ``axes``,
    written now or reused; redone when ``model.onnx`` changes. Beside the model when its
    weights are external; otherwise in ``cache_dir`` when given (bundled folders stay as
    shipped).

    Raises SeamlessError when the graph cannot wrap or the file cannot be written.
    """
    model = Path(model)
    folder = model.parent
    if cache_dir is not None and not read_external_data_locations(model):
        folder = cache_folder(model, cache_dir, "seamless")
    name, info_name = _files(axes)
    target, info_file = folder / name, folder / info_name
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    source = source_stats(model, FORMAT)
    if isinstance(info, dict) and info.get("source") == source and target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        graph = OnnxModel.load(model)
        _rewrite(graph, axes)
        write_parts(target, [graph.encode()])
        info_file.write_text(json.dumps({"source": source}), encoding="utf-8")
    except ProtobufError as exc:
        raise SeamlessError(f"{model}: not a readable ONNX model ({exc})") from exc
    except OSError as exc:
        raise SeamlessError(f"cannot write the seamless graph of {model} ({exc})") from exc
    return target


def seamless_path(path: Path, cache_dir: Path | None, axes: str = BOTH) -> Path:
    """The graph of ``path`` wrapping along ``axes``; a 422 on ``tiling`` when the model
    cannot wrap."""
    try:
        return seamless_graph(path, cache_dir, axes)
    except SeamlessError as exc:
        raise InvalidRequestError("tiling", f"this model cannot tile seamlessly: {exc}") from None
