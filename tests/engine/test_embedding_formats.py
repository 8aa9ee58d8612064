"""Textual inversion files as users download them: AUTOMATIC1111's layouts, diffusers' named by
their token, batched vectors, pickles; read by the engine and recognised at install."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from impasto.engine import StableDiffusion
from impasto.engine.embeddings import EmbeddingError, load_embedding
from impasto.services.detect import detect_file

WIDTH = 32  # sd-tiny's text encoder
VECTORS = np.random.default_rng(5).normal(size=(2, WIDTH)).astype(np.float32)


def _changes(pipe: StableDiffusion, path: Path, prompt: str) -> bool:
    parts = pipe.adapters.get([], [path])
    ours, _ = parts.prompts.encode_pair(prompt, None)
    plain, _ = pipe.prompts.encode_pair(prompt, None)
    return bool(np.abs(ours - plain).max() > 1e-3)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("emb_params", VECTORS),
        ("string_to_param.*", VECTORS),  # an A1111 .pt's dict, converted to safetensors
        ("emb_params", VECTORS[None]),  # [1, n, width]
        ("<cat-toy>", VECTORS),  # diffusers: named after its token
    ],
)
def test_the_file_stem_is_a_prompt_word(
    pipe: StableDiffusion, tmp_path: Path, key: str, value: np.ndarray
) -> None:
    path = tmp_path / "tiny-style.safetensors"
    save_file({key: value}, str(path))
    embedding = load_embedding(path)
    assert embedding.vectors["text_encoder"].shape == (2, WIDTH)
    assert _changes(pipe, path, "a tiny-style cat")
    assert detect_file(path).type == "embedding"


def test_a_diffusers_token_still_works(pipe: StableDiffusion, tmp_path: Path) -> None:
    path = tmp_path / "cattoy.safetensors"
    save_file({"<cat-toy>": VECTORS}, str(path))
    assert load_embedding(path).words == ["<cat-toy>", "cattoy"]
    assert _changes(pipe, path, "a <cat-toy> cat")
    # Either word is the same vectors at the same place.
    parts = pipe.adapters.get([], [path])
    by_token, _ = parts.prompts.encode_pair("a <cat-toy> cat", None)
    by_stem, _ = parts.prompts.encode_pair("a cattoy cat", None)
    np.testing.assert_allclose(by_token, by_stem, atol=1e-6)


@pytest.mark.parametrize("suffix", [".pt", ".bin"])
def test_pickles_are_refused_unopened(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(EmbeddingError) as caught:
        load_embedding(path)
    message = str(caught.value)
    assert f"evil{suffix}" in message and ".safetensors" in message and "pickle" in message
    assert str(tmp_path) not in message


def test_an_unknown_layout_names_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "two.safetensors"
    save_file({"first": VECTORS, "second": VECTORS}, str(path))
    with pytest.raises(EmbeddingError) as caught:
        load_embedding(path)
    assert "emb_params" in str(caught.value) and "first, second" in str(caught.value)
