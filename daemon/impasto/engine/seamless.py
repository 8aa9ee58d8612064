"""Seamless tiling (A1111's ``tiling``): every convolution pads by wrapping around the picture.

AUTOMATIC1111 sets ``padding_mode="circular"`` on every ``Conv2d`` of the UNet and the VAE, so
the picture's left edge continues its right edge and its top its bottom: it tiles without a
seam. ONNX's ``Pad`` wraps only from opset 19 and our exports are opset 18, so each padded
``Conv`` is rewritten here: its input is extended with ``Slice``s of its own far edges
(``Concat`` along the height, then the width, which fills the corners from the opposite corner
as circular padding does) and the ``Conv`` itself no longer pads.

The rewrite works on the protobuf bytes (weights copied, never decoded, as DeepCache's split
does), keeps every initializer's name, so LoRA overrides apply to the tiling graph as to the
plain one, and writes the graph once: ``seamless.onnx`` beside the model (external-data paths
stay valid there), or in the cache folder for a graph whose weights are inline.
"""

from __future__ import annotations

import hashlib
import json
import mmap
from pathlib import Path

import numpy as np

from impasto.engine.onnx_external import read_external_data_locations
from impasto.engine.onnx_ops import domain_name
from impasto.engine.onnx_rewrite import MODEL_GRAPH, model_without_graph, write_parts
from impasto.engine.types import InvalidRequestError
from impasto.formats.protobuf import (
    ProtobufError,
    encode_key,
    encode_string,
    encode_varint,
    fields,
    length_delimited,
    repeated_varints,
    signed,
    string_field,
    text,
    varint,
)

FILE, INFO_FILE = "seamless.onnx", "seamless.json"
FORMAT = 1  # bump when the rewrite changes, so old graphs are redone
_G_NODE, _G_INIT = 1, 5
_N_INPUT, _N_OUTPUT, _N_NAME, _N_OP, _N_ATTR = 1, 2, 3, 4, 5
_A_NAME, _A_I, _A_S, _A_INTS, _A_TYPE = 1, 3, 4, 8, 20
_INT, _INT64 = 2, 7  # AttributeProto.INT, TensorProto.INT64
_INT64_MAX = (1 << 63) - 1
_NCHW_CONVS = {"Conv", "FusedConv", "ConvInteger", "QLinearConv"}
"""Convolutions over NCHW whose first input is the image: wrapped by slicing it."""
_CHANNELS_LAST = {"NhwcConv", "NhwcFusedConv"}


class SeamlessError(Exception):
    """The graph cannot be made to tile; the message says why."""


def _op_and_domain(buf: memoryview, start: int, end: int) -> tuple[str, str]:
    op, domain = "", ""
    for n, w, s, e in fields(buf, start, end):
        if n == _N_OP and w == 2:
            op = text(buf, s, e)
        elif n == 7 and w == 2:
            domain = text(buf, s, e)
    return op, domain_name(domain)


def _attribute(buf: memoryview, start: int, end: int) -> tuple[str, list[int], str]:
    """An attribute's name, its ints and its string."""
    name, ints, string = "", [], ""
    for n, w, s, e in fields(buf, start, end):
        if n == _A_NAME and w == 2:
            name = text(buf, s, e)
        elif n == _A_INTS:
            ints += [signed(v) for v in repeated_varints(buf, w, s, e)]
        elif n == _A_S and w == 2:
            string = text(buf, s, e)
    return name, ints, string


def _node(inputs: list[str], output: str, op: str, name: str, axis: int | None = None) -> bytes:
    body = b"".join(encode_string(_N_INPUT, i) for i in inputs)
    body += encode_string(_N_OUTPUT, output) + encode_string(_N_NAME, name)
    body += encode_string(_N_OP, op)
    if axis is not None:
        attr = encode_string(_A_NAME, "axis") + encode_key(_A_I, 0) + encode_varint(axis)
        body += length_delimited(_N_ATTR, attr + encode_key(_A_TYPE, 0) + encode_varint(_INT))
    return length_delimited(_G_NODE, body)


class _Rewrite:
    """The new nodes and the int64 constants they read, named once each."""

    def __init__(self) -> None:
        self.constants: dict[int, str] = {}

    def constant(self, value: int) -> str:
        """The name of a one-element int64 initializer holding ``value``."""
        if value not in self.constants:
            self.constants[value] = f"impasto_seamless/{value}"
        return self.constants[value]

    def initializers(self) -> bytes:
        out = bytearray()
        for value, name in self.constants.items():
            tensor = encode_key(1, 0) + encode_varint(1) + encode_key(2, 0) + encode_varint(_INT64)
            tensor += encode_string(8, name)
            tensor += length_delimited(9, np.array([value], dtype="<i8").tobytes())
            out += length_delimited(_G_INIT, tensor)
        return bytes(out)

    def wrap(self, x: str, pads: list[int], prefix: str) -> tuple[bytes, str]:
        """Nodes extending ``x`` by ``pads`` (top, left, bottom, right) from its far edges."""
        nodes = bytearray()
        for axis, before, after in ((2, pads[0], pads[2]), (3, pads[1], pads[3])):
            if not before and not after:
                continue
            parts = []
            if before:  # the last ``before`` rows (or columns) go in front
                parts.append(self._slice(nodes, x, -before, _INT64_MAX, axis, f"{prefix}/{axis}b"))
            parts.append(x)
            if after:  # the first ``after`` go behind
                parts.append(self._slice(nodes, x, 0, after, axis, f"{prefix}/{axis}a"))
            x = f"{prefix}/{axis}"
            nodes += _node(parts, x, "Concat", x, axis=axis)
        return bytes(nodes), x

    def _slice(self, nodes: bytearray, x: str, start: int, end: int, axis: int, out: str) -> str:
        inputs = [x, self.constant(start), self.constant(end), self.constant(axis)]
        nodes += _node(inputs, out, "Slice", out)
        return out


def _rewrite_node(buf: memoryview, start: int, end: int, rewrite: _Rewrite) -> bytes:
    """The node's bytes: as they were, or, for a padded convolution, wrapping and the node
    without its pads."""
    whole = length_delimited(_G_NODE, bytes(buf[start:end]))
    op, domain = _op_and_domain(buf, start, end)
    if op in _CHANNELS_LAST:
        raise SeamlessError(f"a channels-last {op} node cannot be made to wrap")
    if op not in _NCHW_CONVS or domain not in ("", "com.microsoft"):
        return whole
    pads: list[int] = []
    inputs: list[str] = []
    kept = bytearray()
    for n, w, s, e in fields(buf, start, end):
        if n == _N_ATTR and w == 2:
            name, ints, string = _attribute(buf, s, e)
            if name == "pads":
                pads = ints
                continue
            if name == "auto_pad" and string not in ("", "NOTSET", "VALID"):
                raise SeamlessError(f"a {op} node pads itself ({string})")
        if n == _N_INPUT and w == 2:
            inputs.append(text(buf, s, e))
            continue
        kept += encode_key(n, w)
        kept += encode_varint(e - s) + bytes(buf[s:e]) if w == 2 else bytes(buf[s:e])
    if not any(pads):
        return whole
    if len(pads) != 4:
        raise SeamlessError(f"a {op} node over {len(pads) // 2} dimensions (only 2 tile)")
    name = string_field(buf, start, end, _N_NAME) or f"{op}_{start}"
    nodes, wrapped = rewrite.wrap(inputs[0], pads, f"impasto_seamless/{name}")
    conv_inputs = b"".join(encode_string(_N_INPUT, i) for i in [wrapped, *inputs[1:]])
    return nodes + length_delimited(_G_NODE, conv_inputs + bytes(kept))


def _opset(head: bytes) -> int:
    """The standard domain's opset version the model imports."""
    version = 0
    view = memoryview(head)
    for n, w, s, e in fields(view, 0, len(view)):
        if n == 8 and w == 2:
            domain, found = "", 0
            for on, ow, os_, oe in fields(view, s, e):
                if on == 1 and ow == 2:
                    domain = text(view, os_, oe)
                elif on == 2 and ow == 0:
                    found = varint(view, os_, oe)[0]
            if domain_name(domain) == "":
                version = found
    return version


def _write_seamless(model: Path, target: Path) -> None:
    """Write the wrapping graph of ``model`` as ``target``; the convolutions rewritten."""
    with model.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        buf = memoryview(m)
        try:
            head, (gs, ge) = model_without_graph(buf)
            if _opset(head) < 10:
                raise SeamlessError("the graph's opset is older than 10 (Slice with inputs)")
            rewrite = _Rewrite()
            body = bytearray()
            for n, w, s, e in fields(buf, gs, ge):
                if n == _G_NODE and w == 2:
                    body += _rewrite_node(buf, s, e, rewrite)
                else:
                    body += encode_key(n, w)
                    body += encode_varint(e - s) + bytes(buf[s:e]) if w == 2 else bytes(buf[s:e])
            body += rewrite.initializers()
            write_parts(target, [head, length_delimited(MODEL_GRAPH, bytes(body))])
        finally:
            buf.release()


def _source_stats(model: Path) -> list[int]:
    st = model.stat()
    return [FORMAT, st.st_size, st.st_mtime_ns]


def seamless_graph(model: Path, cache_dir: Path | None = None) -> Path:
    """The wrapping graph of ``model`` (a UNet's or VAE's ``model.onnx``), written now or
    reused; redone when ``model.onnx`` changes. Beside the model when its weights are
    external; otherwise in ``cache_dir`` when given (bundled folders stay as shipped).

    Raises SeamlessError when the graph cannot wrap or the file cannot be written.
    """
    model = Path(model)
    folder = model.parent
    if cache_dir is not None and not read_external_data_locations(model):
        digest = hashlib.sha256(str(model.resolve()).encode()).hexdigest()[:16]
        folder = cache_dir / "seamless" / digest
    target, info_file = folder / FILE, folder / INFO_FILE
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and info.get("source") == _source_stats(model) and target.is_file():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write_seamless(model, target)
        info_file.write_text(json.dumps({"source": _source_stats(model)}), encoding="utf-8")
    except ProtobufError as exc:
        raise SeamlessError(f"{model}: not a readable ONNX model ({exc})") from exc
    except OSError as exc:
        raise SeamlessError(f"cannot write the seamless graph of {model} ({exc})") from exc
    return target


def seamless_path(path: Path, cache_dir: Path | None) -> Path:
    """The wrapping graph of ``path``; a 422 on ``tiling`` when the model cannot wrap."""
    try:
        return seamless_graph(path, cache_dir)
    except SeamlessError as exc:
        raise InvalidRequestError("tiling", f"this model cannot tile seamlessly: {exc}") from None
