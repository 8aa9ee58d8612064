"""Prompt to CLIP conditioning, AUTOMATIC1111 style: 75-token chunks and emphasis weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from impasto.engine.prompt_parser import BREAK, parse_prompt_attention
from impasto.engine.sessions import OrtModel
from impasto.engine.tokenizer import CONTEXT_LENGTH, ClipTokenizer

CHUNK_TOKENS = CONTEXT_LENGTH - 2  # each chunk is BOS + 75 tokens + EOS
COMMA_LOOKBACK = 20  # a full chunk moves a trailing clause after a comma this close to the next


@dataclass
class Chunk:
    """Up to 75 prompt tokens with their emphasis weights."""

    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


def chunk_prompt(tokenizer: ClipTokenizer, prompt: str, comma_id: int | None) -> list[Chunk]:
    """Tokenize ``prompt`` into weighted 75-token chunks (at least one, possibly empty)."""
    chunks: list[Chunk] = []
    current = Chunk()
    last_comma = -1

    def close() -> None:
        nonlocal current, last_comma
        chunks.append(current)
        current, last_comma = Chunk(), -1

    for fragment, weight in parse_prompt_attention(prompt):
        if fragment == BREAK and weight == -1:
            close()
            continue
        for token in tokenizer.encode(fragment):
            if comma_id is not None and token == comma_id:
                last_comma = len(current.tokens)
            elif (
                len(current.tokens) == CHUNK_TOKENS
                and last_comma != -1
                and len(current.tokens) - last_comma <= COMMA_LOOKBACK
            ):
                # Keep a clause whole: what follows the last comma starts the next chunk.
                cut = last_comma + 1
                moved = Chunk(current.tokens[cut:], current.weights[cut:])
                current.tokens, current.weights = current.tokens[:cut], current.weights[:cut]
                close()
                current = moved
            if len(current.tokens) == CHUNK_TOKENS:
                close()
            current.tokens.append(token)
            current.weights.append(weight)
    if current.tokens or not chunks:
        close()
    return chunks


def chunk_ids(tokenizer: ClipTokenizer, chunk: Chunk) -> tuple[list[int], list[float]]:
    """The 77 token ids of one chunk (BOS, tokens, EOS, padding) and their weights."""
    ids = [tokenizer.bos_id, *chunk.tokens, tokenizer.eos_id]
    weights = [1.0, *chunk.weights, 1.0]
    padding = CONTEXT_LENGTH - len(ids)
    return ids + [tokenizer.pad_id] * padding, weights + [1.0] * padding


class PromptEncoder:
    """Encodes prompts with the text encoder session; returns [1, 77 * chunks, hidden]."""

    def __init__(self, tokenizer: ClipTokenizer, model: OrtModel) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self._ids_input = model.input("input_ids")
        self._output = model.output_index(("last_hidden_state",))
        commas = tokenizer.encode(",")
        self._comma_id = commas[0] if len(commas) == 1 else None

    def chunks(self, prompt: str) -> list[Chunk]:
        """The weighted chunks ``prompt`` tokenizes into."""
        return chunk_prompt(self.tokenizer, prompt, self._comma_id)

    def _encode_ids(self, ids: np.ndarray) -> np.ndarray:
        if self._ids_input.is_dynamic(0) or ids.shape[0] == 1:
            out = self.model.run({"input_ids": ids}, self._output)
        else:  # a text encoder exported with batch 1
            parts = [self.model.run({"input_ids": row[None]}, self._output) for row in ids]
            out = np.concatenate(parts)
        return out.astype(np.float32)

    def encode_pair(
        self, prompt: str, negative: str | None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Conditioning for ``prompt`` and, unless ``negative`` is None, for the negative prompt.

        Both come back with the same number of chunks: the shorter is padded with empty-prompt
        chunks, as AUTOMATIC1111 does, so cond and uncond can share one UNet batch.
        """
        groups = [self.chunks(prompt)]
        if negative is not None:
            groups.append(self.chunks(negative))
        count = max(len(g) for g in groups)
        rows: list[list[int]] = []
        weights: list[list[float]] = []
        for group in groups:
            for chunk in group + [Chunk()] * (count - len(group)):
                ids, w = chunk_ids(self.tokenizer, chunk)
                rows.append(ids)
                weights.append(w)
        hidden = self._encode_ids(np.asarray(rows, dtype=np.int64))
        hidden = apply_emphasis(hidden, np.asarray(weights, dtype=np.float32))
        # [groups * count, 77, H] -> one [1, count * 77, H] sequence per group
        per_group = hidden.reshape(len(groups), count * CONTEXT_LENGTH, hidden.shape[-1])
        cond = per_group[0:1]
        uncond = per_group[1:2] if negative is not None else None
        return cond, uncond


def apply_emphasis(hidden: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Scale each token's hidden state by its weight, then restore each chunk's mean."""
    if np.all(weights == 1.0):
        return hidden
    original_mean = hidden.mean(axis=(1, 2), keepdims=True)
    weighted = hidden * weights[:, :, None]
    new_mean = weighted.mean(axis=(1, 2), keepdims=True)
    return (weighted * (original_mean / new_mean)).astype(np.float32)
