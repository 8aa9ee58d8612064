"""Prompt to CLIP conditioning, AUTOMATIC1111 style: 75-token chunks and emphasis weights."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from impasto.engine.prompt_parser import BREAK, parse_prompt_attention
from impasto.engine.sessions import OrtModel
from impasto.engine.tokenizer import CONTEXT_LENGTH, ClipTokenizer
from impasto.engine.types import InvalidRequestError

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


def prompt_groups(
    tokenizer: ClipTokenizer, prompts: Sequence[str], negative: str | None, comma_id: int | None
) -> list[list[Chunk]]:
    """Chunks of each prompt and (unless None) of the negative, padded to the same count.

    The shorter are padded with empty-prompt chunks, as AUTOMATIC1111 does, so cond and
    uncond (and the parts of an ``AND`` prompt) can share one UNet batch.
    """
    groups = [chunk_prompt(tokenizer, prompt, comma_id) for prompt in prompts]
    if negative is not None:
        groups.append(chunk_prompt(tokenizer, negative, comma_id))
    count = max(len(g) for g in groups)
    return [group + [Chunk()] * (count - len(group)) for group in groups]


def group_rows(
    tokenizer: ClipTokenizer, groups: list[list[Chunk]]
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids [rows, 77] (int64) and emphasis weights [rows, 77] of every chunk, in order."""
    rows: list[list[int]] = []
    weights: list[list[float]] = []
    for group in groups:
        for chunk in group:
            ids, w = chunk_ids(tokenizer, chunk)
            rows.append(ids)
            weights.append(w)
    return np.asarray(rows, dtype=np.int64), np.asarray(weights, dtype=np.float32)


class LayerNorm:
    """The text encoder's final layer norm, applied in numpy to an earlier layer (clip skip)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
        self.weight, self.bias, self.eps = weight.astype(np.float32), bias.astype(np.float32), eps

    def __call__(self, hidden: np.ndarray) -> np.ndarray:
        mean = hidden.mean(axis=-1, keepdims=True)
        var = ((hidden - mean) ** 2).mean(axis=-1, keepdims=True)
        return ((hidden - mean) / np.sqrt(var + self.eps) * self.weight + self.bias).astype(
            np.float32
        )


class PromptEncoder:
    """Encodes prompts with the text encoder session; returns [1, 77 * chunks, hidden]."""

    def __init__(
        self,
        tokenizer: ClipTokenizer,
        model: OrtModel,
        final_norm: Callable[[], LayerNorm] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.model = model
        self._ids_input = model.input("input_ids")
        self._output = model.output_index(("last_hidden_state",))
        self.final_norm = final_norm
        commas = tokenizer.encode(",")
        self._comma_id = commas[0] if len(commas) == 1 else None

    @property
    def comma_id(self) -> int | None:
        """The id of "," when it is one token (chunks break after commas)."""
        return self._comma_id

    @property
    def layers(self) -> int:
        """Transformer layers whose outputs were exported (0 without ``hidden_states.N``)."""
        return exported_layers(self.model.output_names)

    def hidden_state_output(self, from_end: int) -> int:
        """Index of the output ``hidden_states[-from_end]``; InvalidRequestError if absent."""
        name = f"hidden_states.{self.layers + 1 - from_end}"
        if not self.layers or from_end > self.layers or name not in self.model.output_names:
            raise InvalidRequestError(
                "clip_skip",
                f"this model's text encoder has {self.layers} exported layers; "
                "re-export it with hidden states (output_hidden_states) to use clip skip"
                if not self.layers
                else f"must be 1..{self.layers} for this model",
            )
        return self.model.output_names.index(name)

    def chunks(self, prompt: str) -> list[Chunk]:
        """The weighted chunks ``prompt`` tokenizes into."""
        return chunk_prompt(self.tokenizer, prompt, self._comma_id)

    def encode_ids(self, ids: np.ndarray, output: int) -> np.ndarray:
        """Run the encoder on token rows [rows, 77] and return output ``output`` as float32."""
        if self._ids_input.is_dynamic(0) or ids.shape[0] == 1:
            out = self.model.run({"input_ids": ids}, output)
        else:  # a text encoder exported with batch 1
            parts = [self.model.run({"input_ids": row[None]}, output) for row in ids]
            out = np.concatenate(parts)
        return out.astype(np.float32)

    def encode_pair(
        self, prompt: str, negative: str | None, clip_skip: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Conditioning for ``prompt`` and, unless ``negative`` is None, for the negative prompt.

        ``clip_skip`` n > 1 takes the n-th last layer through the final layer norm, as
        AUTOMATIC1111 does (diffusers' ``clip_skip`` is n - 1).
        """
        return self.encode([prompt], negative, clip_skip)

    def encode(
        self, prompts: Sequence[str], negative: str | None, clip_skip: int = 1
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """[len(prompts), tokens, hidden] for the prompts (the parts of an ``AND`` prompt) and
        [1, tokens, hidden] for the negative (None when it is), all of one length."""
        groups = prompt_groups(self.tokenizer, prompts, negative, self._comma_id)
        rows, weights = group_rows(self.tokenizer, groups)
        if clip_skip <= 1:
            hidden = self.encode_ids(rows, self._output)
        else:
            if self.final_norm is None:
                raise InvalidRequestError("clip_skip", "this model does not support clip skip")
            hidden = self.final_norm()(self.encode_ids(rows, self.hidden_state_output(clip_skip)))
        hidden = apply_emphasis(hidden, weights)
        # [groups * count, 77, H] -> one [count * 77, H] sequence per group
        count = len(groups[0])
        per_group = hidden.reshape(len(groups), count * CONTEXT_LENGTH, hidden.shape[-1])
        conds = per_group[: len(prompts)]
        uncond = per_group[len(prompts) :] if negative is not None else None
        return conds, uncond


def exported_layers(output_names: Iterable[str]) -> int:
    """Transformer layers a text encoder graph exports the outputs of: ``hidden_states.0`` is
    the embeddings, ``hidden_states.N`` layer N's (0 when exported without them)."""
    return max(sum(name.startswith("hidden_states.") for name in output_names) - 1, 0)


def apply_emphasis(hidden: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Scale each token's hidden state by its weight, then restore each chunk's mean."""
    if np.all(weights == 1.0):
        return hidden
    original_mean = hidden.mean(axis=(1, 2), keepdims=True)
    weighted = hidden * weights[:, :, None]
    new_mean = weighted.mean(axis=(1, 2), keepdims=True)
    return (weighted * (original_mean / new_mean)).astype(np.float32)
