"""Textual inversion embeddings: new prompt tokens backed by new rows of the embedding table.

Formats (``.safetensors`` only; pickled ``.pt`` files could run code and are refused):
diffusers (one tensor named after its token), AUTOMATIC1111 (``emb_params``, or
``string_to_param.*`` as its ``.pt`` files read when converted, named by the file stem) and
SDXL (``clip_l`` and ``clip_g`` for the two text encoders, named by the stem). The file stem
is a prompt word for every embedding, as in AUTOMATIC1111; a diffusers one's token is one too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impasto.engine.onnx_graph import OnnxGraph
from impasto.engine.tokenizer import ClipTokenizer
from impasto.engine.types import EngineError
from impasto.formats.safetensors import SafetensorsError, read_safetensors

_SDXL_KEYS = {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}


class EmbeddingError(EngineError):
    """An embedding file cannot be used; the message names the file and the reason."""


@dataclass
class Embedding:
    """One textual inversion: its prompt token and its vectors [n, width] per text encoder."""

    path: Path
    token: str
    vectors: dict[str, np.ndarray]

    @property
    def words(self) -> list[str]:
        """The prompt words that stand for it: its token, and its file stem where that differs."""
        return list(dict.fromkeys((self.token, self.path.stem)))


def is_a1111_key(key: str) -> bool:
    """Whether ``key`` is the tensor of an AUTOMATIC1111 embedding (``emb_params``, or
    ``string_to_param.*`` from a ``.pt`` file's dict converted to safetensors)."""
    return key == "emb_params" or key == "string_to_param" or key.startswith("string_to_param.")


def load_embedding(path: Path) -> Embedding:
    """Parse one ``.safetensors`` textual inversion file."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise EmbeddingError(
            f"{path.name}: only .safetensors embeddings are supported; a {path.suffix or 'bare'} "
            "file is a pickle, which could run code when loaded, so it is never opened "
            "(convert it to .safetensors where you trust it)"
        )
    try:
        tensors, _ = read_safetensors(path)
    except SafetensorsError as exc:  # truncated, not safetensors, unreadable
        raise EmbeddingError(f"embedding {exc}") from None
    a1111 = [key for key in tensors if is_a1111_key(key)]
    if len(a1111) == 1:
        token, vectors = path.stem, {"text_encoder": tensors[a1111[0]]}
    elif set(_SDXL_KEYS) & set(tensors):
        token = path.stem
        vectors = {_SDXL_KEYS[k]: v for k, v in tensors.items() if k in _SDXL_KEYS}
    elif len(tensors) == 1:
        token, value = next(iter(tensors.items()))
        vectors = {"text_encoder": value}
    else:
        raise EmbeddingError(
            f"{path.name}: not a diffusers (one tensor), AUTOMATIC1111 (emb_params or "
            f"string_to_param.*) or SDXL (clip_l, clip_g) embedding; it holds "
            f"{', '.join(sorted(tensors)[:5]) or 'no tensors'}"
        )
    # [n, width]; a vector alone is one row, and a [1, n, width] batch its n rows.
    vectors = {
        k: np.atleast_2d(v).reshape(-1, v.shape[-1] if v.ndim else 1).astype(np.float32)
        for k, v in vectors.items()
    }
    return Embedding(path, token, vectors)


def token_table(graph: OnnxGraph) -> str:
    """The name of the text encoder's token embedding initializer."""
    for node in graph.nodes:
        if (
            node.op_type == "Gather"
            and "token_embedding" in node.name
            and node.inputs
            and node.inputs[0] in graph.initializers
        ):
            return node.inputs[0]
    raise EmbeddingError(f"{graph.path}: no token embedding table found in the graph")


def fitting(
    embeddings: list[Embedding], graphs: dict[str, OnnxGraph]
) -> tuple[list[Embedding], list[str]]:
    """The embeddings whose vectors fit every text encoder in ``graphs`` (by component), and a
    warning for each other one: made for another model family (SD 1.x vectors on SDXL, SDXL's
    on SD 2), it is left out and its word stays plain text, as AUTOMATIC1111 skips it, rather
    than failing the job. Reads only the token tables' shapes."""
    widths = {component: token_width(graph) for component, graph in graphs.items()}
    kept, warnings = [], []
    for embedding in embeddings:
        if fits(embedding, widths):
            kept.append(embedding)
            continue
        shapes = {c: v.shape[1] for c, v in embedding.vectors.items()}
        has = ", ".join(f"{c} {w}" for c, w in sorted(shapes.items()))
        takes = ", ".join(f"{c} {w}" for c, w in sorted(widths.items()))
        warnings.append(
            f"embedding {embedding.path.stem!r} was made for another model family (its vectors: "
            f"{has} wide; this model takes {takes}): left out, its word is read as text"
        )
    return kept, warnings


def fits(embedding: Embedding, widths: dict[str, int]) -> bool:
    """Whether ``embedding`` has vectors of the right width for every text encoder in
    ``widths`` (by component)."""
    shapes = {c: v.shape[1] for c, v in embedding.vectors.items()}
    return all(shapes.get(c) == width for c, width in widths.items())


def token_width(graph: OnnxGraph) -> int:
    """How wide a text encoder's token vectors are, from its table's shape (not its values)."""
    return graph.initializers[graph.resolve(token_table(graph))].dims[-1]


def embedding_overrides(
    graph: OnnxGraph, component: str, tokenizer: ClipTokenizer, embeddings: list[Embedding]
) -> dict[str, np.ndarray]:
    """Add each embedding's token to ``tokenizer`` and return the enlarged embedding table."""
    name = token_table(graph)
    table = graph.array(name)
    rows = [table]
    for embedding in embeddings:
        vectors = embedding.vectors.get(component)
        if vectors is None:
            raise EmbeddingError(f"{embedding.path}: has no vectors for this model's {component}")
        if vectors.shape[1] != table.shape[1]:
            raise EmbeddingError(
                f"{embedding.path}: vectors are {vectors.shape[1]} wide but this model's "
                f"{component} takes {table.shape[1]}; it was made for another model family"
            )
        for word in embedding.words:  # each word gets rows of its own
            tokenizer.add_embedding(word, vectors.shape[0])
            rows.append(vectors.astype(table.dtype))
    return {name: np.concatenate(rows)}
