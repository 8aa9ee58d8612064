"""Tokenizer, emphasis parser, 75-token chunking and emphasis weighting."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import CLIPTokenizerFast

from impasto.engine import StableDiffusion
from impasto.engine.prompt_parser import BREAK, parse_prompt_attention
from impasto.engine.text_encoder import CHUNK_TOKENS, Chunk, apply_emphasis, chunk_ids
from impasto.engine.tokenizer import CONTEXT_LENGTH, ClipTokenizer

from .conftest import SD_TINY, small

PROMPTS = [
    "a red cat in a garden",
    "Portrait of an OLD wizard, highly detailed, 8k!!  oil painting",
    "naïve café — déjà vu; it's 3.14 o'clock",
    "",
]


@pytest.fixture(scope="module")
def reference() -> CLIPTokenizerFast:
    return CLIPTokenizerFast.from_pretrained(SD_TINY / "tokenizer")


@pytest.mark.parametrize("prompt", PROMPTS)
def test_tokenizer_matches_clip_tokenizer_fast(reference: CLIPTokenizerFast, prompt: str) -> None:
    ours = ClipTokenizer(SD_TINY / "tokenizer", "<|endoftext|>")
    ids, _ = chunk_ids(ours, _chunk(ours.encode(prompt)))
    expected = reference(prompt, padding="max_length", max_length=77, truncation=True).input_ids
    assert ids == expected


def _chunk(tokens: list[int]) -> Chunk:
    return Chunk(tokens, [1.0] * len(tokens))


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a (cat)", [("a ", 1.0), ("cat", 1.1)]),
        ("a ((cat))", [("a ", 1.0), ("cat", pytest.approx(1.21))]),
        ("a (cat:1.3) dog", [("a ", 1.0), ("cat", 1.3), (" dog", 1.0)]),
        ("a [cat]", [("a ", 1.0), ("cat", pytest.approx(1 / 1.1))]),
        (r"a \(cat\)", [("a (cat)", 1.0)]),
        ("(a (b:2) c)", [("a ", 1.1), ("b", pytest.approx(2.2)), (" c", 1.1)]),
        ("a (unclosed", [("a ", 1.0), ("unclosed", 1.1)]),
        ("x:y (z:nope)", [("x:y ", 1.0), ("z:nope", 1.1)]),
        ("a BREAK b", [("a", 1.0), (BREAK, -1.0), ("b", 1.0)]),
        ("", [("", 1.0)]),
    ],
)
def test_prompt_attention_parsing(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert parse_prompt_attention(prompt) == expected


def _long_prompt(words: int) -> str:
    vocabulary = [
        "red",
        "blue",
        "castle",
        "forest",
        "dragon",
        "river",
        "golden",
        "misty",
        "ancient",
        "tower",
    ]
    return " ".join(vocabulary[i % len(vocabulary)] for i in range(words))


def test_long_prompt_is_encoded_in_two_chunks(pipe: StableDiffusion) -> None:
    prompt = _long_prompt(100)
    tokens = pipe.prompts.tokenizer.encode(prompt)
    assert CHUNK_TOKENS < len(tokens) <= 2 * CHUNK_TOKENS
    cond, uncond = pipe.prompts.encode_pair(prompt, "")
    assert cond.shape == (1, 2 * CONTEXT_LENGTH, 32)
    assert uncond is not None and uncond.shape == cond.shape  # padded with empty-prompt chunks
    empty, _ = pipe.prompts.encode_pair("", None)
    np.testing.assert_allclose(uncond[:, CONTEXT_LENGTH:], empty, atol=1e-5)
    # Each chunk is encoded on its own: the first equals the first 75 tokens alone.
    first = pipe.prompts.tokenizer.decode(tokens[:CHUNK_TOKENS])
    alone, _ = pipe.prompts.encode_pair(first, None)
    np.testing.assert_allclose(cond[:, :CONTEXT_LENGTH], alone, atol=1e-5)


def test_long_prompt_generates(pipe: StableDiffusion) -> None:
    image = pipe.generate(small(prompt=_long_prompt(120), steps=2))[0].image
    assert image.size == (64, 64)


def test_chunks_break_after_a_nearby_comma(pipe: StableDiffusion) -> None:
    encoder = pipe.prompts
    head = encoder.tokenizer.encode(_long_prompt(70))[:70]
    prompt = encoder.tokenizer.decode(head) + ", " + _long_prompt(10)
    chunks = encoder.chunks(prompt)
    assert len(chunks) == 2
    assert chunks[0].tokens[-1] == encoder.tokenizer.encode(",")[0]  # the clause moved whole
    assert len(chunks[0].tokens) == 71 and len(chunks[1].tokens) == 10


def test_break_starts_a_new_chunk(pipe: StableDiffusion) -> None:
    chunks = pipe.prompts.chunks("red castle BREAK blue river")
    assert [len(c.tokens) for c in chunks] == [2, 2]


def test_emphasis_weights_tokens_and_restores_the_mean(pipe: StableDiffusion) -> None:
    encoder = pipe.prompts
    chunk = encoder.chunks("a (red:1.5) [cat]")[0]
    assert chunk.weights == [1.0, 1.5, pytest.approx(1 / 1.1)]
    plain, _ = encoder.encode_pair("a red cat", None)
    weighted, _ = encoder.encode_pair("a (red:1.5) [cat]", None)
    assert encoder.chunks("a red cat")[0].tokens == chunk.tokens
    assert not np.allclose(plain, weighted)
    np.testing.assert_allclose(weighted.mean(), plain.mean(), rtol=1e-4, atol=1e-6)
    # Token 2 ("red", after BOS and "a") grows relative to the unweighted encoding.
    ratio = weighted[0, 2] / plain[0, 2]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-6)  # float32 rounding
    assert ratio[0] > 1.3


def test_apply_emphasis_with_unit_weights_is_identity() -> None:
    hidden = np.random.default_rng(0).standard_normal((2, 77, 8)).astype(np.float32)
    assert apply_emphasis(hidden, np.ones((2, 77), np.float32)) is hidden
