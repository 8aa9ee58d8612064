"""A1111's composable prompts (``a circle AND a square :0.5``), against a loop written here
from A1111's formula (``combine_denoised``: uncond + scale * sum(weight * (part - uncond)))
around diffusers' Euler scheduler and the raw ONNX UNet, on the prompt-following model."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from diffusers import EulerDiscreteScheduler
from optimum.onnxruntime import ORTStableDiffusionPipeline

from impasto.engine import GenerationParams, StableDiffusion, load_pipeline
from impasto.engine.prompt_schedule import composable_parts
from impasto.engine.providers import cpu_choice
from impasto.engine.types import InvalidRequestError

from .conftest import TINY

SHAPES = TINY / "impasto-shapes"
SIZE, STEPS, CFG = 128, 6, 5.0
CIRCLE, SQUARE = "a red circle on a white background", "a blue square on a green background"


@pytest.mark.parametrize(
    ("prompt", "parts"),
    [
        ("a cat", [("a cat", 1.0)]),
        ("a clock at 10:30", [("a clock at 10:30", 1.0)]),  # no AND: no weight read
        ("a cat AND a dog :0.5", [("a cat", 1.0), (" a dog", 0.5)]),
        ("a cat:1.2 AND a dog: -0.4 ", [("a cat", 1.2), (" a dog", -0.4)]),
        ("a (cat:1.2) AND a dog", [("a (cat:1.2)", 1.0), (" a dog", 1.0)]),
        ("a cat ANDROID AND", [("a cat ANDROID", 1.0), ("", 1.0)]),
        ("a cat and a dog", [("a cat and a dog", 1.0)]),  # only the upper-case word
    ],
)
def test_parts_and_weights_are_read_as_a1111_reads_them(
    prompt: str, parts: list[tuple[str, float]]
) -> None:
    assert composable_parts(prompt) == parts


@pytest.fixture(scope="module")
def shapes() -> StableDiffusion:
    return load_pipeline(SHAPES, cpu_choice())


def _reference(prompts: list[str], weights: list[float], noise: np.ndarray) -> np.ndarray:
    ref: Any = ORTStableDiffusionPipeline.from_pretrained(SHAPES, provider="CPUExecutionProvider")
    scheduler = EulerDiscreteScheduler.from_config(ref.scheduler.config)
    scheduler.set_timesteps(STEPS)
    unet = ort.InferenceSession(str(SHAPES / "unet" / "model.onnx"))

    def embed(text: str) -> np.ndarray:
        return ref.encode_prompt(text, ref.device, 1, False)[0].numpy()

    hidden = np.concatenate([embed(""), *[embed(p) for p in prompts]])
    latents = torch.from_numpy(noise) * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        scaled = scheduler.scale_model_input(latents, t).numpy()
        feeds = {
            "sample": np.repeat(scaled, len(hidden), axis=0),
            "timestep": np.array(float(t), np.float32),
            "encoder_hidden_states": hidden,
        }
        out = unet.run(None, feeds)[0]
        guided = out[0] + CFG * sum(w * (out[i + 1] - out[0]) for i, w in enumerate(weights))
        latents = scheduler.step(torch.from_numpy(guided[None]), t, latents).prev_sample
    scale = ref.vae_decoder.config.get("scaling_factor", 0.18215)
    image = ref.vae_decoder(latent_sample=latents / scale)[0]
    return np.asarray(image).transpose(0, 2, 3, 1)[0]


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.7, 0.3), (1.0, -0.5)])
def test_composable_prompts_are_a1111s_sum_of_guidance(
    shapes: StableDiffusion, weights: tuple[float, float]
) -> None:
    noise = np.random.default_rng(2).standard_normal((1, 4, 16, 16)).astype(np.float32)
    expected = _reference([CIRCLE, SQUARE], list(weights), noise)
    prompt = f"{CIRCLE} :{weights[0]} AND {SQUARE} :{weights[1]}"
    params = GenerationParams(
        prompt=prompt, width=SIZE, height=SIZE, steps=STEPS, cfg_scale=CFG, sampler="euler"
    )
    ours = np.asarray(shapes.generate(params, latents=noise)[0].image, dtype=np.int32)
    reference = ((expected + 1) * 127.5).round().clip(0, 255).astype(np.int32)
    assert reference.std() > 10
    assert np.abs(reference - ours).max() <= 2
    # The second part counts: the first alone is another picture.
    alone = GenerationParams(
        prompt=CIRCLE, width=SIZE, height=SIZE, steps=STEPS, cfg_scale=CFG, sampler="euler"
    )
    single = np.asarray(shapes.generate(alone, latents=noise)[0].image, dtype=np.int32)
    assert np.abs(single - ours).max() > 20


def test_an_lcm_unet_has_no_uncond_to_compose_from() -> None:
    lcm = load_pipeline(TINY / "sd-tiny-lcm", cpu_choice())
    params = GenerationParams(prompt="a cat AND a dog", width=64, height=64, steps=2)
    with pytest.raises(InvalidRequestError) as refused:
        lcm.generate(params)
    assert refused.value.field == "prompt"


def test_a_unet_of_fixed_batch_runs_each_part_on_its_own(shapes: StableDiffusion) -> None:
    """Exports with a batch of 1 get uncond and each part as calls of their own: the same
    picture as one batched call."""
    params = GenerationParams(
        prompt=f"{CIRCLE} AND {SQUARE} :0.4", width=SIZE, height=SIZE, steps=3, seed=5
    )
    batched = np.asarray(shapes.generate(params)[0].image, dtype=np.int32)
    before = shapes.unet.calls
    shapes.unet.dynamic_batch = False
    try:
        one_by_one = np.asarray(shapes.generate(params)[0].image, dtype=np.int32)
    finally:
        shapes.unet.dynamic_batch = True
    assert shapes.unet.calls - before == 3 * 3  # uncond and two parts, each step
    assert np.abs(batched - one_by_one).max() <= 1


@pytest.mark.parametrize("folder", ["impasto-shapes", "sdxl-tiny"])
def test_a_part_at_weight_zero_changes_nothing(folder: str) -> None:
    """``A AND B :0`` is A alone: each part keeps its own conditioning (on SDXL its own pooled
    embedding too), whatever the other parts are."""
    pipe = load_pipeline(TINY / folder, cpu_choice())
    size = 128 if folder == "impasto-shapes" else 64
    common = {"width": size, "height": size, "steps": 3, "seed": 9, "cfg_scale": CFG}
    alone = GenerationParams(prompt=CIRCLE, **common)  # type: ignore[arg-type]
    zero = GenerationParams(prompt=f"{CIRCLE} AND {SQUARE} :0", **common)  # type: ignore[arg-type]
    first = np.asarray(pipe.generate(alone)[0].image, dtype=np.int32)
    assert np.abs(first - np.asarray(pipe.generate(zero)[0].image, dtype=np.int32)).max() <= 1
    swapped = GenerationParams(prompt=f"{SQUARE} :0 AND {CIRCLE}", **common)  # type: ignore[arg-type]
    assert np.abs(first - np.asarray(pipe.generate(swapped)[0].image, dtype=np.int32)).max() <= 1
