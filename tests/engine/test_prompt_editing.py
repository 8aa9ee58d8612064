"""A1111's prompt editing through the whole pipeline, against diffusers on the same sessions.

The model is the bundled prompt-following one (impasto-shapes): the random tiny models barely
listen to their prompts, so an edit would not show in their pictures.

Reference side: optimum's ORT pipeline (diffusers' ``StableDiffusionPipeline`` code around the
same ONNX sessions) with a ``callback_on_step_end`` that swaps the prompt's embeddings between
steps, to the words A1111's schedule gives each step (written out by hand below from A1111's
rules: the words of the first stretch whose last step is at least the step, counted from 0).
Under CFG diffusers batches [negative, prompt] as one ``prompt_embeds``, so the callback swaps
both halves.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import EulerDiscreteScheduler, HeunDiscreteScheduler
from optimum.onnxruntime import ORTStableDiffusionPipeline
from PIL import Image

from impasto.engine import GenerationParams, StableDiffusion, load_pipeline
from impasto.engine.providers import cpu_choice
from impasto.engine.types import HiresParams

from .conftest import TINY

SHAPES = TINY / "impasto-shapes"
SIZE = 128
CFG = 5.0
MAX_PIXEL_DIFF = 2  # out of 255
STEPS = 5
CIRCLE, SQUARE = "a red circle on a blue background", "a green square on a yellow background"
EDIT = "a [red circle on a blue background:green square on a yellow background:{}]"

# (prompt, negative, the words of each UNet call's step for the prompt, and for the negative)
CASES = {
    "from-to": (EDIT.format(2), "", [CIRCLE] * 3 + [SQUARE] * 2, [""] * 5),
    "fraction": (EDIT.format(".4"), "", [CIRCLE] * 3 + [SQUARE] * 2, [""] * 5),
    "alternate": (
        "a [red circle on a blue background|green square on a yellow background]",
        "",
        [CIRCLE, CIRCLE, SQUARE, CIRCLE, SQUARE],
        [""] * 5,
    ),
    "negative": ("a circle", "[red:blue:1]", ["a circle"] * 5, ["red"] * 2 + ["blue"] * 3),
}


@pytest.fixture(scope="module")
def shapes() -> StableDiffusion:
    return load_pipeline(SHAPES, cpu_choice())


@pytest.fixture(scope="module")
def reference() -> Any:
    return ORTStableDiffusionPipeline.from_pretrained(SHAPES, provider="CPUExecutionProvider")


def _params(**values: Any) -> GenerationParams:
    fields: dict[str, Any] = {"width": SIZE, "height": SIZE, "steps": STEPS, "seed": 7}
    fields.update(cfg_scale=CFG, sampler="euler")
    return GenerationParams(**{**fields, **values})


def _embeddings(ref: Any, prompt: str, negative: str) -> torch.Tensor:
    cond, uncond = ref.encode_prompt(prompt, ref.device, 1, True, negative)
    return torch.cat([uncond, cond])


def _reference_image(
    ref: Any, scheduler: type, noise: np.ndarray, prompts: list[str], negatives: list[str]
) -> np.ndarray:
    """diffusers' picture where call i runs on ``prompts[i]`` and ``negatives[i]``."""
    ref.scheduler = scheduler.from_config(ref.scheduler.config)

    def swap(pipe: Any, i: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        if i + 1 < len(prompts):
            tensors["prompt_embeds"] = _embeddings(pipe, prompts[i + 1], negatives[i + 1])
        return tensors

    return ref(
        prompt_embeds=_embeddings(ref, prompts[0], negatives[0])[1:],
        negative_prompt_embeds=_embeddings(ref, prompts[0], negatives[0])[:1],
        num_inference_steps=STEPS,
        guidance_scale=CFG,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(noise),
        output_type="np",
        callback_on_step_end=swap,
        callback_on_step_end_tensor_inputs=["prompt_embeds"],
    ).images[0]


def _noise() -> np.ndarray:
    return np.random.default_rng(5).standard_normal((1, 4, SIZE // 8, SIZE // 8)).astype(np.float32)


def _max_diff(reference: np.ndarray, ours: Image.Image) -> int:
    ref = (reference * 255).round().astype(np.int32)
    assert ref.std() > 10, "the reference image is flat; the comparison would prove nothing"
    return int(np.abs(ref - np.asarray(ours, dtype=np.int32)).max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_prompt_editing_matches_diffusers_with_the_embeddings_swapped(
    shapes: StableDiffusion, reference: Any, case: str
) -> None:
    prompt, negative, prompts, negatives = CASES[case]
    noise = _noise()
    expected = _reference_image(reference, EulerDiscreteScheduler, noise, prompts, negatives)
    params = _params(prompt=prompt, negative_prompt=negative)
    ours = shapes.generate(params, latents=noise)[0].image
    assert _max_diff(expected, ours) <= MAX_PIXEL_DIFF
    # And the edit shows: the first words alone make another picture.
    unedited = replace(params, prompt=prompts[0], negative_prompt=negatives[0])
    assert _max_diff(expected, shapes.generate(unedited, latents=noise)[0].image) > 20


def test_a_second_order_sampler_counts_steps_not_calls(
    shapes: StableDiffusion, reference: Any
) -> None:
    """Heun calls the UNet twice a step (9 calls for 5 steps): both calls of step 2 still have
    the circle, where A1111 (which counts calls) would have dropped it after the third call."""
    calls_steps = [0, 0, 1, 1, 2, 2, 3, 3, 4]
    prompts = [CIRCLE if step <= 2 else SQUARE for step in calls_steps]
    noise = _noise()
    expected = _reference_image(reference, HeunDiscreteScheduler, noise, prompts, [""] * 9)
    ours = shapes.generate(_params(prompt=EDIT.format(2), sampler="heun"), latents=noise)
    assert _max_diff(expected, ours[0].image) <= MAX_PIXEL_DIFF


def _pixels(pipe: StableDiffusion, params: GenerationParams) -> np.ndarray:
    return np.asarray(pipe.generate(params, latents=_noise())[0].image, dtype=np.int32)


def test_a_hires_pass_reads_fractions_after_the_first_pass(shapes: StableDiffusion) -> None:
    """``[circle:square:0.5]`` switches half way through the first pass; the hires pass then
    has the square throughout (A1111: a fraction below 1 belongs to the first pass), and
    ``1.5`` switches half way through the hires pass."""
    hires = HiresParams(width=192, height=192, steps=4, strength=0.6, upscaler="latent")
    edited = _params(prompt=EDIT.format("0.5"), hires=hires)
    first = _pixels(shapes, edited)
    assert np.array_equal(
        first, _pixels(shapes, replace(edited, hires=replace(hires, prompt=SQUARE)))
    )
    late = replace(edited, hires=replace(hires, prompt=EDIT.format("1.5")))
    assert np.abs(first - _pixels(shapes, late)).max() > 20
