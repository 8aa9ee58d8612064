"""Fuse exported attention into ONNX Runtime's ``com.microsoft.MultiHeadAttention``.

Exporters write scaled dot-product attention as a dozen nodes per block: each of Q, K and V
reshaped to heads and transposed, Q and K scaled, ``MatMul``, an optional mask ``Add``,
``Softmax``, ``MatMul`` and the transpose and reshape back. ORT's fused kernel does the same
math without materialising the transposed copies (a 4096-token self-attention at 512x512 runs
in about half the time on two cores: bench/attention_block.py). ORT's own UNet fusion
(``onnxruntime.transformers.optimizer``, which also fails on today's exports with numpy 2)
merges the Q/K/V projections into one weight, which breaks run-time LoRA (it finds a
layer's weight through the ``.../to_q/MatMul`` node); this matcher keeps every projection as
exported and replaces only the attention core, so it works for UNets, VAEs and CLIP alike.

Only the graph changes: weights are never loaded, so a 3.4 GB UNet with external data is
fused in seconds and its data files stay as they are. The graph is read and written with
``formats.onnx_model``, not the ``onnx`` package, so the single binary fuses too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from impasto.formats.onnx_model import Graph, Node, OnnxModel

MS_DOMAIN = "com.microsoft"
Q_PERM = [0, 2, 1, 3]  # [B, S, N, H] -> [B, N, S, H]
K_PERM = [0, 2, 3, 1]  # [B, L, N, H] -> [B, N, H, L]


@dataclass
class _Branch:
    """One of Q, K, V: the 3-D tensor that enters, its head count, and its scale factor."""

    source: str
    heads: int
    scale: str | float | None = None  # the Mul factor: a tensor name, a constant, or none


class _Graph:
    """Producer and consumer indexes over one graph, and its constant values."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.producer = {out: node for node in graph.nodes for out in node.outputs}
        self.consumers: dict[str, list[Node]] = {}
        for node in graph.nodes:
            for name in node.inputs:
                self.consumers.setdefault(name, []).append(node)
        self.initializers = graph.initializers
        self.outputs = {out.name for out in graph.outputs}

    def make(self, name: str, op_type: str) -> Node | None:
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type else None

    def _source(self, name: str) -> tuple[str, Node | None]:
        """``name`` and its producer, followed back through Identity nodes."""
        node = self.producer.get(name)
        while node is not None and node.op_type == "Identity":
            name = node.inputs[0]
            node = self.producer.get(name)
        return name, node

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or Constant node output (through Identity), else None."""
        name, node = self._source(name)
        if name in self.initializers:
            return self.initializers[name].values
        if node is not None and node.op_type == "Constant":
            for attr in node.attributes:
                if attr.name == "value" and attr.t is not None:
                    return attr.t.values
                if attr.name == "value_float" and attr.f is not None:
                    return np.array(attr.f, np.float32)
                if attr.name == "value_int" and attr.i is not None:
                    return np.array(attr.i, np.int64)
        return None

    def dims(self, name: str) -> tuple[int, ...] | None:
        """The shape of an initializer or Constant tensor (weights' values are not read)."""
        name, node = self._source(name)
        if name in self.initializers:
            return self.initializers[name].dims
        value = node.attribute("value") if node is not None and node.op_type == "Constant" else None
        return value.t.dims if value is not None and value.t is not None else None

    def only_consumer(self, name: str) -> Node | None:
        users = self.consumers.get(name, [])
        if len(users) != 1 or name in self.outputs:
            return None
        return users[0]


def _perm(node: Node) -> list[int]:
    attr = node.attribute("perm")
    return list(attr.ints) if attr is not None else []


def _width(g: _Graph, name: str) -> int:
    """The last dimension of a projection's output (its bias or weight), 0 when unknown."""
    node = g.producer.get(name)
    if node is None or node.op_type not in ("Add", "MatMul"):
        return 0
    for operand in node.inputs:
        dims = g.dims(operand)
        if dims and dims[-1] > 1:
            return int(dims[-1])
    return _width(g, node.inputs[0]) if node.op_type == "Add" else 0


def _heads(g: _Graph, reshape: Node) -> int:
    """The head count of a [B, S, hidden] -> [B, S, N, H] Reshape, 0 when not readable.

    The shape is a constant, or a Concat whose third element is the head count, or -1 beside
    a constant head size (CLIP's ``view(b, s, -1, head_dim)``: hidden / head_dim).
    """
    parts: list[np.ndarray | None]
    shape = g.constant(reshape.inputs[1])
    if shape is not None:
        parts = [np.array(v) for v in shape.reshape(-1)]
    else:
        concat = g.make(reshape.inputs[1], "Concat")
        if concat is None:
            return 0
        parts = [g.constant(name) for name in concat.inputs]
    if len(parts) != 4 or parts[2] is None or parts[2].size != 1:
        return 0
    heads = int(parts[2].reshape(-1)[0])
    if heads > 0:
        return heads
    head_size = parts[3]
    if heads != -1 or head_size is None or head_size.size != 1:
        return 0
    size, width = int(head_size.reshape(-1)[0]), _width(g, reshape.inputs[0])
    return width // size if size > 0 and width and width % size == 0 else 0


def _is_default_scale(g: _Graph, name: str) -> bool:
    """Whether ``name`` is torch's exported ``sqrt(1 / sqrt(head_size))`` factor.

    ``scaled_dot_product_attention`` without a ``scale`` multiplies Q and K each by the square
    root of the default scale, computed from the runtime shape: Sqrt(Div(1, Sqrt(H))).
    """
    node = g.make(name, "Sqrt")
    if node is None:
        return False
    inner = g.producer.get(node.inputs[0])
    while inner is not None and inner.op_type == "Cast":
        inner = g.producer.get(inner.inputs[0])
    if inner is None or inner.op_type != "Div":
        return False
    one = g.constant(inner.inputs[0])
    root = g.producer.get(inner.inputs[1])
    while root is not None and root.op_type == "Cast":
        root = g.producer.get(root.inputs[0])
    return (
        one is not None
        and one.size == 1
        and float(one.reshape(-1)[0]) == 1.0
        and root is not None
        and (root.op_type == "Sqrt")
    )


def _branch(g: _Graph, name: str, perm: list[int]) -> _Branch | None:
    """Walk back from an attention MatMul input: [Mul] <- Transpose(perm) <- Reshape(heads)."""
    scale: str | float | None = None
    node = g.producer.get(name)
    if node is not None and node.op_type == "Mul":
        for i, other in ((0, 1), (1, 0)):
            value = g.constant(node.inputs[other])
            if value is not None and value.size == 1:
                scale, name = float(value.reshape(-1)[0]), node.inputs[i]
                break
            if _is_default_scale(g, node.inputs[other]):
                scale, name = node.inputs[other], node.inputs[i]
                break
        else:
            return None
        node = g.producer.get(name)
    if node is None or node.op_type != "Transpose" or _perm(node) != perm:
        return None
    reshape = g.make(node.inputs[0], "Reshape")
    if reshape is None:
        return None
    heads = _heads(g, reshape)
    if not heads:
        return None
    return _Branch(reshape.inputs[0], heads, scale)


def _scale(q: _Branch, k: _Branch, extra: float) -> float | None:
    """The MultiHeadAttention ``scale`` (0.0: ORT's default 1/sqrt(H)); None when unknown."""
    if isinstance(q.scale, str) or isinstance(k.scale, str):
        if not (isinstance(q.scale, str) and isinstance(k.scale, str)) or extra != 1.0:
            return None  # one default factor without the other, or a second scale on top
        return 0.0
    factor = (q.scale if q.scale is not None else 1.0) * (k.scale if k.scale is not None else 1.0)
    return factor * extra


def _match(g: _Graph, softmax: Node) -> tuple[Node, Node] | None:
    """The final Reshape of one attention around ``softmax`` and the fused node replacing it.

    The rest of the pattern is left to ``_prune``: what only fed the attention goes, what a
    ``Shape`` elsewhere still reads stays.
    """
    found = softmax.attribute("axis")
    axis = found.i if found is not None and found.i is not None else -1
    if axis not in (-1, 3):
        return None
    name, bias, extra = softmax.inputs[0], "", 1.0
    node = g.producer.get(name)
    if node is not None and node.op_type == "Add":  # an additive mask (CLIP's causal mask)
        matmul = [i for i, n in enumerate(node.inputs) if g.make(n, "MatMul")]
        if len(matmul) != 1:
            return None
        bias, name = node.inputs[1 - matmul[0]], node.inputs[matmul[0]]
        node = g.producer.get(name)
    if node is not None and node.op_type in ("Mul", "Div"):
        value = g.constant(node.inputs[1])
        if value is None or value.size != 1:
            return None
        extra = float(value.reshape(-1)[0])
        extra = 1.0 / extra if node.op_type == "Div" else extra
        node = g.producer.get(node.inputs[0])
    if node is None or node.op_type != "MatMul":
        return None
    qk = node
    q, k = _branch(g, qk.inputs[0], Q_PERM), _branch(g, qk.inputs[1], K_PERM)
    pv = g.only_consumer(softmax.outputs[0])
    if (
        q is None
        or k is None
        or pv is None
        or pv.op_type != "MatMul"
        or pv.inputs[0] != softmax.outputs[0]
    ):
        return None
    v = _branch(g, pv.inputs[1], Q_PERM)
    out_t = g.only_consumer(pv.outputs[0])
    if v is None or v.scale is not None or out_t is None or out_t.op_type != "Transpose":
        return None
    out_r = g.only_consumer(out_t.outputs[0])
    if _perm(out_t) != Q_PERM or out_r is None or out_r.op_type != "Reshape":
        return None
    out_shape = g.constant(out_r.inputs[1])
    concat = g.make(out_r.inputs[1], "Concat")
    if not (
        (out_shape is not None and out_shape.size == 3)
        or (concat is not None and len(concat.inputs) == 3)
    ):
        return None
    if not q.heads == k.heads == v.heads:
        return None
    scale = _scale(q, k, extra)
    if scale is None:
        return None
    inputs = [q.source, k.source, v.source]
    if bias:
        inputs += ["", "", bias]  # bias, key_padding_mask, attention_bias
    attrs: dict[str, int | float] = {"num_heads": q.heads}
    if scale:
        attrs["scale"] = scale
    fused = Node.new(
        "MultiHeadAttention",
        inputs,
        [out_r.outputs[0]],
        name=f"{out_r.name or out_r.outputs[0]}/MultiHeadAttention",
        domain=MS_DOMAIN,
        **attrs,
    )
    return out_r, fused


def _reads(node: Node) -> set[str]:
    """The names ``node`` reads, including those its subgraphs (If, Loop) take from outside."""
    names = set(node.inputs)
    for attr in node.attributes:
        for sub in attr.graphs:
            for inner in sub.nodes:
                names |= _reads(inner)
    return names


def _prune(graph: Graph) -> None:
    """Drop nodes whose outputs nothing reads any more (the shape arithmetic of fused heads)."""
    keep = list(graph.nodes)
    while True:
        used = {name for node in keep for name in _reads(node)} | {o.name for o in graph.outputs}
        alive = [n for n in keep if any(out in used for out in n.outputs)]
        if len(alive) == len(keep):
            break
        keep = alive
    graph.nodes = keep


def fuse_attention(model: OnnxModel) -> int:
    """Replace each recognised attention of ``model``'s main graph; returns how many."""
    graph = model.graph
    g = _Graph(graph)
    replaced: dict[int, Node] = {}  # id of each pattern's final Reshape -> fused node
    for softmax in [n for n in graph.nodes if n.op_type == "Softmax"]:
        found = _match(g, softmax)
        if found is not None:
            replaced[id(found[0])] = found[1]
    if not replaced:
        return 0
    # The fused node takes the place of the final Reshape, where all its inputs exist.
    graph.nodes = [replaced.get(id(node), node) for node in graph.nodes]
    _prune(graph)
    model.add_opset(MS_DOMAIN, 1)
    return len(replaced)


def count_ops(model: OnnxModel, names: Iterable[str]) -> dict[str, int]:
    """How many nodes of each op type in ``names`` the main graph holds."""
    wanted = set(names)
    counts = dict.fromkeys(sorted(wanted), 0)
    for node in model.graph.nodes:
        if node.op_type in wanted:
            counts[node.op_type] += 1
    return counts
