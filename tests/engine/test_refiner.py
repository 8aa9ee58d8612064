"""SDXL refiner as a second pass: our base + refiner against optimum's two-stage pipeline."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from optimum.onnxruntime import ORTStableDiffusionXLImg2ImgPipeline, ORTStableDiffusionXLPipeline

from impasto.engine import load_pipeline
from impasto.engine.model_folder import ModelFolderError, open_refiner_folder
from impasto.engine.providers import cpu_choice
from impasto.engine.types import InvalidRequestError, Progress

from .conftest import TINY, small
from .families_oracle import MAX_PIXEL_DIFF, SIZE, max_diff, noise

PROMPT = "a red cat in a garden"
REFINER = TINY / "sdxl-tiny-refiner"
STEPS = 5


@pytest.fixture(scope="module")
def sdxl() -> Any:
    return load_pipeline(TINY / "sdxl-tiny", cpu_choice())


@pytest.fixture(scope="module")
def references() -> tuple[Any, Any]:
    base = ORTStableDiffusionXLPipeline.from_pretrained(
        TINY / "sdxl-tiny", provider="CPUExecutionProvider"
    )
    refiner = ORTStableDiffusionXLImg2ImgPipeline.from_pretrained(
        REFINER, provider="CPUExecutionProvider"
    )
    return base, refiner


def _two_stage(references: tuple[Any, Any], latents: np.ndarray, switch: float, neg: str) -> Any:
    """diffusers' documented ensemble-of-experts run: denoising_end, then denoising_start."""
    base, refiner = references
    common = {
        "prompt": PROMPT,
        "negative_prompt": neg or None,
        "height": SIZE,
        "width": SIZE,
        "num_inference_steps": STEPS,
        "guidance_scale": 5.0,
    }
    handed_over = base(
        latents=torch.from_numpy(latents), denoising_end=switch, output_type="latent", **common
    ).images
    return refiner(image=handed_over, denoising_start=switch, output_type="np", **common).images[0]


@pytest.mark.parametrize(("switch", "negative"), [(0.8, ""), (0.5, "blurry, dark")])
def test_base_plus_refiner_matches_optimum(
    sdxl: Any, references: tuple[Any, Any], switch: float, negative: str
) -> None:
    latents = noise(11)
    reference = _two_stage(references, latents, switch, negative)
    params = small(
        sampler="euler",
        steps=STEPS,
        cfg_scale=5.0,
        negative_prompt=negative,
        refiner=REFINER,
        refiner_switch=switch,
    )
    ours = sdxl.generate(params, latents=latents)[0].image
    assert max_diff(reference, ours) <= MAX_PIXEL_DIFF


def test_refiner_changes_the_image_and_reports_one_progress_sequence(sdxl: Any) -> None:
    latents = noise(12)
    plain = sdxl.generate(small(sampler="euler", steps=STEPS), latents=latents)[0].image
    seen: list[Progress] = []
    calls_before = sdxl.refiner_for(REFINER).unet.calls
    refined = sdxl.generate(
        small(sampler="euler", steps=STEPS, refiner=REFINER, refiner_switch=0.5),
        seen.append,
        latents=latents,
    )[0].image
    diff = np.abs(np.asarray(plain, dtype=np.int32) - np.asarray(refined, dtype=np.int32))
    assert diff.max() > MAX_PIXEL_DIFF
    # Leading timesteps 801, 601, 401, 201, 1: the base runs the two at or above 500.
    assert [(p.step, p.total) for p in seen] == [(i, STEPS) for i in range(1, STEPS + 1)]
    # Cond and uncond share one call per step: the refiner ran the remaining three.
    assert sdxl.refiner_for(REFINER).unet.calls - calls_before == 3


def test_switch_one_is_the_base_alone(sdxl: Any) -> None:
    latents = noise(13)
    plain = sdxl.generate(small(sampler="euler", steps=STEPS), latents=latents)[0].image
    full = sdxl.generate(
        small(sampler="euler", steps=STEPS, refiner=REFINER, refiner_switch=1.0), latents=latents
    )[0].image
    assert plain.tobytes() == full.tobytes()


def test_the_refiner_goes_on_with_the_prompts_edits_where_the_base_stopped(sdxl: Any) -> None:
    """Switch 0.5 over 5 steps: the base runs steps 0-1, the refiner 2-4. ``[...:3]`` edits
    the prompt at the refiner's last step, counted from the base's first; ``[...:4]`` never."""
    latents = noise(14)

    def refined(prompt: str) -> bytes:
        params = small(sampler="euler", steps=STEPS, refiner=REFINER, refiner_switch=0.5)
        params = replace(params, prompt=prompt)
        return sdxl.generate(params, latents=latents)[0].image.tobytes()

    plain = refined(PROMPT)
    assert refined("a [red cat in a garden:blue dog on a beach:4]") == plain
    assert refined("a [red cat in a garden:blue dog on a beach:3]") != plain


def test_refiner_folder_is_checked(sdxl: Any) -> None:
    with pytest.raises(ModelFolderError, match="not an SDXL refiner"):
        open_refiner_folder(TINY / "sdxl-tiny")
    found = open_refiner_folder(REFINER)
    assert found.model_index["requires_aesthetics_score"] is True
    with pytest.raises(InvalidRequestError) as info:
        sdxl.validate(small(refiner=REFINER, refiner_switch=1.5))
    assert info.value.field == "refiner_switch"
