"""Textual inversion, clip skip and VAE swap against diffusers and optimum on the tiny models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from optimum.onnxruntime import ORTStableDiffusionPipeline

from impasto.engine import InvalidRequestError, StableDiffusion, load_pipeline
from impasto.engine.providers import cpu_choice
from impasto.services.optimize import expose_hidden_states

from .conftest import SD_TINY, TINY, small
from .families_oracle import ADAPTERS, EMBEDDINGS, MAX_PIXEL_DIFF, max_diff, noise, torch_pipeline

DIFFUSERS_TI = EMBEDDINGS / "tiny-diffusers.safetensors"
A1111_TI = EMBEDDINGS / "tiny-a1111.safetensors"
ALT_VAE = ADAPTERS / "vae" / "sd-tiny-vae-alt"


def _diffusers_embeds(pipe: Any, prompt: str, clip_skip: int | None = None) -> np.ndarray:
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompt, "cpu", 1, False, clip_skip=clip_skip)
    return embeds.numpy()


@pytest.mark.parametrize(
    ("path", "prompt"),
    [
        (DIFFUSERS_TI, "a <tiny-cat> in a garden"),
        (A1111_TI, "a tiny-a1111 in a garden"),
    ],
)
def test_embedding_conditioning_matches_load_textual_inversion(
    pipe: StableDiffusion, path: Path, prompt: str
) -> None:
    reference = torch_pipeline("sd-tiny")
    token = None if path == DIFFUSERS_TI else path.stem
    reference.load_textual_inversion(str(path), token=token)
    expected = _diffusers_embeds(reference, prompt)
    parts = pipe.adapters.get([], [path])
    ours, _ = parts.prompts.encode_pair(prompt, None)
    np.testing.assert_allclose(ours, expected, atol=1e-4)
    plain, _ = pipe.prompts.encode_pair(prompt, None)
    assert np.abs(plain - ours).max() > 0.1, "the embedding must change the conditioning"


def test_embedding_changes_the_image(pipe: StableDiffusion) -> None:
    prompt = "a <tiny-cat> in a garden"
    latents = noise(2)
    plain = pipe.generate(small(prompt=prompt, steps=2), latents=latents)[0].image
    used = pipe.generate(small(prompt=prompt, steps=2, embeddings=[DIFFUSERS_TI]), latents=latents)[
        0
    ].image
    assert np.abs(np.asarray(plain, np.int32) - np.asarray(used, np.int32)).max() > 2


@pytest.mark.parametrize("model", ["sd-tiny-turbo", "sd-tiny"])
def test_clip_skip_matches_diffusers(model: str, tmp_path: Path) -> None:
    # sd-tiny-turbo is exported with every layer's hidden state; sd-tiny without, so it gets
    # them as an install's optimise stage adds them. diffusers counts from 0.
    folder = TINY / model
    if model == "sd-tiny":
        folder = tmp_path / model
        shutil.copytree(TINY / model, folder)
        assert expose_hidden_states(folder) == 2
        assert expose_hidden_states(folder) == 0  # once is enough
    ours = load_pipeline(folder, cpu_choice())
    reference = torch_pipeline(model)
    prompt = "a red cat in a garden"
    for clip_skip in (1, 2):
        expected = _diffusers_embeds(reference, prompt, clip_skip - 1 or None)
        got, _ = ours.prompts.encode_pair(prompt, None, clip_skip)
        np.testing.assert_allclose(got, expected, atol=1e-4)
    two, _ = ours.prompts.encode_pair(prompt, None, 2)
    one, _ = ours.prompts.encode_pair(prompt, None, 1)
    assert np.abs(two - one).max() > 0.1


def test_clip_skip_needs_hidden_states(pipe: StableDiffusion) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        pipe.generate(small(steps=1, clip_skip=2))
    assert caught.value.field == "clip_skip"


def test_vae_swap_decodes_with_the_other_vae(pipe: StableDiffusion, tmp_path: Path) -> None:
    # Reference: optimum's pipeline on a copy of sd-tiny whose VAE folders are the other VAE.
    folder = tmp_path / "sd-tiny-alt"
    shutil.copytree(SD_TINY, folder)
    for part in ("vae_decoder", "vae_encoder"):
        shutil.rmtree(folder / part)
        shutil.copytree(ALT_VAE / part, folder / part)
    ref = ORTStableDiffusionPipeline.from_pretrained(folder, provider="CPUExecutionProvider")
    from diffusers import EulerDiscreteScheduler

    ref.scheduler = EulerDiscreteScheduler.from_config(ref.scheduler.config)
    latents = noise(3)
    reference = ref(
        prompt="a red cat in a garden",
        negative_prompt="blurry",
        num_inference_steps=3,
        guidance_scale=7.0,
        height=64,
        width=64,
        latents=torch.from_numpy(latents),
        output_type="np",
    ).images[0]
    swapped = pipe.generate(small(steps=3, vae_dir=ALT_VAE), latents=latents)[0].image
    plain = pipe.generate(small(steps=3), latents=latents)[0].image
    assert max_diff(reference, swapped) <= MAX_PIXEL_DIFF
    assert max_diff(reference, plain) > 10


def test_an_embedding_made_for_another_family_is_left_out_with_a_warning() -> None:
    """tiny-a1111's vectors are 32 wide; impasto-shapes' text encoder takes 64. AUTOMATIC1111
    skips such an embedding and reads its word as text; so does a job here, with a warning."""
    shapes = load_pipeline(TINY / "impasto-shapes", cpu_choice())
    parts = shapes.adapters.get([], [A1111_TI, DIFFUSERS_TI])
    skipped = [w for w in parts.warnings if "another model family" in w]
    assert len(skipped) == 2 and "'tiny-a1111'" in skipped[0], parts.warnings
    assert "text_encoder 32 wide" in skipped[0] and "takes text_encoder 64" in skipped[0]
    prompt = "a tiny-a1111 circle and a <tiny-cat>"
    ours, _ = parts.prompts.encode_pair(prompt, None)
    plain, _ = shapes.prompts.encode_pair(prompt, None)
    np.testing.assert_array_equal(ours, plain)
