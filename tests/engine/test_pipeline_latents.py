"""Whole pipelines against optimum's ONNX Runtime pipelines, compared on the final latents.

The images of ``test_equivalence.py`` are 8-bit and let a 1% error through; here both sides
stop before the VAE and the latents must agree to 1e-4 of their largest value. Stochastic
samplers get the noise our pipeline drew, fed to diffusers' ``randn_tensor`` in the same order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img
from optimum.onnxruntime import ORTStableDiffusionImg2ImgPipeline, ORTStableDiffusionPipeline

from impasto.engine import StableDiffusion
from impasto.engine.noise import BatchNoise
from impasto.engine.pipelines.base import UNet
from impasto.engine.pipelines.img2img import encode_init_image

from .conftest import SD_TINY, SD_TINY_V, SIZE, small
from .scheduler_oracle import ORACLES
from .test_equivalence import NEGATIVE, PROMPT, _init_image, _noise

RELATIVE = 1e-4
CPU = "CPUExecutionProvider"
PIPELINE_SAMPLERS = [s for s in ORACLES if s != "lcm"]  # LCM needs an LCM-distilled UNet
STEPS = {"heun": 4, "pndm": 6}


def close(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Whether ``ours`` is within 1e-4 of the largest value of ``theirs`` everywhere."""
    assert np.abs(theirs).max() > 0.1, "the reference latents are ~0; they would prove nothing"
    return bool(np.abs(ours - theirs).max() <= RELATIVE * np.abs(theirs).max())


class RecordedNoise:
    """Records the noise our pipeline draws (after its start noise) to replay in diffusers."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.draws: list[np.ndarray] = []
        original = BatchNoise.__call__

        def record(noise: BatchNoise, shape: tuple[int, ...]) -> np.ndarray:
            out = original(noise, shape)
            self.draws.append(out)
            return out

        monkeypatch.setattr(BatchNoise, "__call__", record)

    def replay(self, scheduler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        module = __import__(type(scheduler).__module__, fromlist=["randn_tensor"])
        draws = iter(self.draws)

        def randn_tensor(shape: Any, **_: Any) -> torch.Tensor:
            # diffusers' Euler a also draws at the last step, where sigma_up is 0 and ours
            # (like k-diffusion) draws nothing: any value does there.
            drawn = next(draws, None)
            if drawn is None:
                return torch.zeros(tuple(shape))
            return torch.from_numpy(drawn).reshape(tuple(shape))

        if hasattr(module, "randn_tensor"):
            monkeypatch.setattr(module, "randn_tensor", randn_tensor)


def set_scheduler(ref: Any, sampler: str) -> None:
    cls, overrides = ORACLES[sampler]
    # SD's configs say clip_sample False; the folder's omits it and DDIM would default to True.
    ref.scheduler = cls.from_config(ref.scheduler.config, **{"clip_sample": False, **overrides})


@pytest.fixture(scope="module")
def ref_txt2img() -> Any:
    return ORTStableDiffusionPipeline.from_pretrained(SD_TINY, provider="CPUExecutionProvider")


def txt2img_pair(
    pipe: StableDiffusion, ref: Any, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray]:
    steps = STEPS.get(sampler, 5)
    noise = _noise()
    recorded = RecordedNoise(monkeypatch)
    ours = pipe.denoise(small(sampler=sampler, steps=steps), latents=noise).latents
    set_scheduler(ref, sampler)
    recorded.replay(ref.scheduler, monkeypatch)
    theirs = ref(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=steps,
        guidance_scale=7.0,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(noise),
        output_type="latent",
    ).images
    return ours, np.asarray(theirs)


@pytest.mark.parametrize("sampler", PIPELINE_SAMPLERS)
def test_txt2img_latents_match_optimum(
    pipe: StableDiffusion, ref_txt2img: Any, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = txt2img_pair(pipe, ref_txt2img, sampler, monkeypatch)
    assert close(ours, theirs), np.abs(ours - theirs).max() / np.abs(theirs).max()


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "ddim"])
def test_the_comparison_catches_a_0_1_percent_error(
    pipe: StableDiffusion, ref_txt2img: Any, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run: Callable[..., np.ndarray] = UNet.run
    monkeypatch.setattr(UNet, "run", lambda self, *a, **k: run(self, *a, **k) * np.float32(1.001))
    ours, theirs = txt2img_pair(pipe, ref_txt2img, sampler, monkeypatch)
    assert not close(ours, theirs)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "ddim"])
def test_the_comparison_catches_a_timestep_one_off(
    pipe: StableDiffusion, ref_txt2img: Any, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny UNet depends on the timestep (models/build_tiny.py: 8 GroupNorm groups), so
    # t + 1 (of 1000) in every call shows in the final latents.
    run: Callable[..., np.ndarray] = UNet.run
    monkeypatch.setattr(UNet, "run", lambda self, x, t, *a, **k: run(self, x, t + 1.0, *a, **k))
    ours, theirs = txt2img_pair(pipe, ref_txt2img, sampler, monkeypatch)
    assert not close(ours, theirs)


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "unipc"])
def test_v_prediction_latents_match_optimum(
    pipe_v: StableDiffusion, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ORTStableDiffusionPipeline.from_pretrained(SD_TINY_V, provider="CPUExecutionProvider")
    ours, theirs = txt2img_pair(pipe_v, ref, sampler, monkeypatch)
    assert close(ours, theirs)


# diffusers' LMS picks its order from the step index and PNDM takes an img2img run's first
# call as a correction; Impasto warms both up as a fresh run does (see scheduler_oracle.py,
# whose per-step comparison patches diffusers for that), so they are left out here.
IMG2IMG_SAMPLERS = [s for s in PIPELINE_SAMPLERS if s not in ("lms", "pndm")]


@pytest.mark.parametrize("sampler", IMG2IMG_SAMPLERS)
def test_img2img_latents_match_optimum(
    pipe: StableDiffusion, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = ORTStableDiffusionImg2ImgPipeline.from_pretrained(SD_TINY, provider=CPU)
    set_scheduler(ref, sampler)
    image, noise = _init_image(), _noise(5)
    steps = 8
    recorded = RecordedNoise(monkeypatch)
    params = small(sampler=sampler, steps=steps, init_image=image, strength=0.6)
    ours = pipe.denoise(params, latents=noise).latents
    init_latents = encode_init_image(pipe.vae, image, batch=1)
    monkeypatch.setattr(  # the start noise; the scheduler gets the recorded draws
        pipeline_stable_diffusion_img2img,
        "randn_tensor",
        lambda shape, **_: torch.from_numpy(noise).reshape(tuple(shape)),
    )
    recorded.replay(ref.scheduler, monkeypatch)
    theirs = ref(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        image=torch.from_numpy(init_latents),
        strength=0.6,
        num_inference_steps=steps,
        guidance_scale=7.0,
        output_type="latent",
    ).images
    assert close(ours, np.asarray(theirs)), sampler
