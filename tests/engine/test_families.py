"""SDXL, Turbo and LCM: our final latents against optimum's ONNX Runtime pipelines' (1e-4)."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from diffusers.schedulers import scheduling_lcm
from optimum.onnxruntime import (
    ORTLatentConsistencyModelPipeline,
    ORTStableDiffusionPipeline,
    ORTStableDiffusionXLPipeline,
)

from impasto.engine import load_pipeline
from impasto.engine.families import Signals, classify, family_defaults
from impasto.engine.noise import BatchNoise
from impasto.engine.providers import cpu_choice

from .conftest import TINY, small
from .families_oracle import SIZE, latents_close, noise

PROMPT = "a red cat in a garden"


def _run(ref: Any, latents: Any, **kwargs: Any) -> Any:
    return ref(
        prompt=PROMPT,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(latents),
        output_type="latent",
        **kwargs,
    ).images


@pytest.fixture(scope="module")
def sdxl() -> Any:
    return load_pipeline(TINY / "sdxl-tiny", cpu_choice())


@pytest.fixture(scope="module")
def ref_sdxl() -> Any:
    return ORTStableDiffusionXLPipeline.from_pretrained(
        TINY / "sdxl-tiny", provider="CPUExecutionProvider"
    )


@pytest.mark.parametrize("negative", ["", "blurry, dark"])
def test_sdxl_matches_optimum(sdxl: Any, ref_sdxl: Any, negative: str) -> None:
    # An empty negative prompt is zeros (force_zeros_for_empty_prompt), as diffusers does
    # when none is given; time ids are (64, 64, 0, 0, 64, 64) on both sides.
    assert sdxl.info.family == "sdxl"
    latents = noise(3)
    reference = _run(
        ref_sdxl,
        latents,
        negative_prompt=negative or None,
        num_inference_steps=4,
        guidance_scale=5.0,
    )
    ours = sdxl.denoise(
        small(sampler="euler", steps=4, cfg_scale=5.0, negative_prompt=negative), latents=latents
    )
    assert latents_close(ours.latents, reference)


def test_sdxl_time_ids_change_the_output(sdxl: Any, ref_sdxl: Any) -> None:
    latents = noise(4)
    params = small(sampler="euler", steps=2, cfg_scale=1.0)
    plain = sdxl.denoise(params, latents=latents).latents
    reference = _run(
        ref_sdxl,
        latents,
        num_inference_steps=2,
        guidance_scale=1.0,
        original_size=(128, 128),
        target_size=(SIZE, SIZE),
    )
    # Our time ids follow the request size; a different original size is another image.
    assert not latents_close(plain, reference)


@pytest.mark.parametrize(("steps", "sampler"), [(1, "euler_a"), (4, "euler")])
def test_sdxl_turbo_matches_optimum(steps: int, sampler: str) -> None:
    pipe = load_pipeline(TINY / "sdxl-tiny-turbo", cpu_choice())
    assert pipe.info.family == "sdxl-turbo"
    ref = ORTStableDiffusionXLPipeline.from_pretrained(
        TINY / "sdxl-tiny-turbo", provider="CPUExecutionProvider"
    )
    if sampler == "euler":
        ref.scheduler = EulerDiscreteScheduler.from_config(ref.scheduler.config)
    latents = noise(5)
    # Turbo runs without guidance: the family default (0) is diffusers' guidance_scale=0.0.
    cfg = family_defaults("sdxl-turbo").cfg_scale
    reference = _run(ref, latents, num_inference_steps=steps, guidance_scale=0.0)
    ours = pipe.denoise(small(sampler=sampler, steps=steps, cfg_scale=cfg), latents=latents)
    assert latents_close(ours.latents, reference)


@pytest.mark.parametrize(("steps", "sampler"), [(1, "euler_a"), (4, "euler")])
def test_sd_turbo_matches_optimum(steps: int, sampler: str) -> None:
    pipe = load_pipeline(TINY / "sd-tiny-turbo", cpu_choice())
    assert pipe.info.family == "sd-turbo"
    ref = ORTStableDiffusionPipeline.from_pretrained(
        TINY / "sd-tiny-turbo", provider="CPUExecutionProvider"
    )
    cls = EulerAncestralDiscreteScheduler if sampler == "euler_a" else EulerDiscreteScheduler
    ref.scheduler = cls.from_config(ref.scheduler.config)
    latents = noise(6)
    reference = _run(ref, latents, num_inference_steps=steps, guidance_scale=0.0)
    ours = pipe.denoise(small(sampler=sampler, steps=steps, cfg_scale=1.0), latents=latents)
    assert latents_close(ours.latents, reference)


@pytest.mark.parametrize("steps", [1, 4])
def test_lcm_matches_optimum(steps: int, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = load_pipeline(TINY / "sd-tiny-lcm", cpu_choice())
    assert pipe.info.family == "lcm"
    ref = ORTLatentConsistencyModelPipeline.from_pretrained(
        TINY / "sd-tiny-lcm", provider="CPUExecutionProvider"
    )
    seed, latents = 1234, noise(8)
    # LCM re-noises between steps: hand diffusers the draws our seeded generator makes.
    ours_noise = BatchNoise(seed, 1)
    monkeypatch.setattr(
        scheduling_lcm,
        "randn_tensor",
        lambda shape, **_: torch.from_numpy(ours_noise(tuple(shape))),
    )
    reference = _run(ref, latents, num_inference_steps=steps, guidance_scale=8.5)
    ours = pipe.denoise(
        small(sampler="lcm", steps=steps, cfg_scale=8.5, seed=seed), latents=latents
    )
    assert latents_close(ours.latents, reference)


def test_lcm_guidance_scale_is_embedded() -> None:
    pipe = load_pipeline(TINY / "sd-tiny-lcm", cpu_choice())
    latents = noise(9)
    low = pipe.generate(small(sampler="lcm", steps=2, cfg_scale=1.5), latents=latents)[0].image
    high = pipe.generate(small(sampler="lcm", steps=2, cfg_scale=8.5), latents=latents)[0].image
    assert low.tobytes() != high.tobytes()
    # One UNet call per step: the scale goes into timestep_cond, not a second (uncond) pass.
    assert pipe.unet.calls == 4


def test_family_defaults_are_exposed() -> None:
    turbo = load_pipeline(TINY / "sd-tiny-turbo", cpu_choice()).info
    assert turbo.defaults is not None
    # Turbo: one step, no guidance (cfg 0: one UNet batch per step).
    assert (turbo.defaults.steps, turbo.defaults.cfg_scale) == (1, 0.0)
    assert turbo.defaults.width == turbo.default_size
    assert family_defaults("lcm").sampler == "lcm"
    assert family_defaults("sdxl").width == 1024
    assert family_defaults("no-such-family") == family_defaults("sd1")


@pytest.mark.parametrize(
    ("width", "prediction", "family", "size"),
    [
        (768, "epsilon", "sd1", 512),
        (1024, "epsilon", "sd2", 512),
        # An SD 1.x v-prediction fine-tune keeps SD 1.x's 512 px; SD 2.x-v is a 768 px model.
        (768, "v_prediction", "sd1-v", 512),
        (1024, "v_prediction", "sd2-v", 768),
        (None, "v_prediction", "sd2-v", 768),
    ],
)
def test_v_prediction_models_are_told_apart_by_text_width(
    width: int | None, prediction: str, family: str, size: int
) -> None:
    signals = Signals("m", sdxl=False, prediction_type=prediction, cross_attention_dim=width)
    assert classify(signals) == family
    assert family_defaults(family).width == size
