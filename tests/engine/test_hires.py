"""Hires fix against the same two passes composed from diffusers (optimum) pipelines."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img
from optimum.onnxruntime import ORTStableDiffusionImg2ImgPipeline, ORTStableDiffusionPipeline

from impasto.engine import InvalidRequestError, Progress, StableDiffusion
from impasto.engine.noise import BatchNoise
from impasto.engine.types import HiresParams

from .conftest import SD_TINY, small
from .families_oracle import latents_close
from .scheduler_oracle import ORACLES, SCHEDULE_FLAGS

CPU = "CPUExecutionProvider"
PROMPT, NEGATIVE = "a red cat in a garden", "blurry"


def with_scheduler(ref: Any, sampler: str, schedule: str = "default") -> Any:
    cls, overrides = ORACLES[sampler]
    settings = {"clip_sample": False, **overrides, **SCHEDULE_FLAGS[schedule]}
    ref.scheduler = cls.from_config(ref.scheduler.config, **settings)
    return ref


@pytest.mark.parametrize(
    ("sampler", "hr_sampler", "hr_schedule", "upscaler"),
    [
        ("euler", None, None, "latent"),
        ("dpmpp_2m", "ddim", None, "latent-bicubic"),
        # The hires pass on its own schedule (A1111's hr_scheduler), the first on the default.
        ("euler", "dpmpp_2m", "karras", "latent"),
    ],
)
def test_hires_is_txt2img_then_upscale_then_img2img(
    pipe: StableDiffusion,
    sampler: str,
    hr_sampler: str | None,
    hr_schedule: str | None,
    upscaler: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hires = HiresParams(
        width=128,
        height=96,
        upscaler=upscaler,
        steps=6,
        strength=0.6,
        sampler=hr_sampler,
        schedule=hr_schedule,  # type: ignore[arg-type]
        prompt="a blue cat",
        cfg_scale=5.0,
    )
    params = small(sampler=sampler, steps=5, seed=42, hires=hires)
    progress: list[Progress] = []
    ours = pipe.generate(params, progress=progress.append)[0].image
    assert ours.size == (128, 96)
    # Both passes count as one run: 5 + int(6 * 0.6) = 8 calls.
    assert [(p.step, p.total) for p in progress] == [(i, 8) for i in range(1, 9)]

    from impasto.engine.hires import run_hires

    latents = run_hires(pipe, params, None, None, None).latents
    # The reference: the same noise through diffusers; each pass starts from the seed's own
    # noise at its size (A1111 makes a new generator for the hires pass).
    first_noise = BatchNoise(42, 1)((1, 4, 8, 8))
    second_noise = BatchNoise(42, 1)((1, 4, 12, 16))
    first = diffusers_txt2img(sampler, first_noise, steps=5, width=64, height=64)
    mode = "bilinear" if upscaler == "latent" else "bicubic"
    upscaled = torch.nn.functional.interpolate(first, size=(12, 16), mode=mode)
    second = diffusers_img2img(
        monkeypatch,
        (hr_sampler or sampler, hr_schedule or "default"),
        upscaled,
        second_noise,
        prompt="a blue cat",
        num_inference_steps=6,
        guidance_scale=5.0,
    )
    assert latents_close(latents, second)


def diffusers_txt2img(
    sampler: str, noise: np.ndarray, steps: int, width: int, height: int
) -> torch.Tensor:
    """optimum's txt2img latents from ``noise``: a first pass's reference."""
    base = with_scheduler(
        ORTStableDiffusionPipeline.from_pretrained(SD_TINY, provider=CPU), sampler
    )
    return base(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=steps,
        guidance_scale=7.0,
        height=height,
        width=width,
        latents=torch.from_numpy(noise),
        output_type="latent",
    ).images


def diffusers_img2img(
    monkeypatch: pytest.MonkeyPatch,
    sampler: tuple[str, str],
    image: torch.Tensor,
    noise: np.ndarray,
    **call: Any,
) -> torch.Tensor:
    """optimum's img2img latents of ``image`` at strength 0.6, its noise ``noise``: a second
    pass's reference (``sampler``: id and schedule)."""
    img2img = with_scheduler(
        ORTStableDiffusionImg2ImgPipeline.from_pretrained(SD_TINY, provider=CPU), *sampler
    )
    monkeypatch.setattr(
        pipeline_stable_diffusion_img2img,
        "randn_tensor",
        lambda shape, **_: torch.from_numpy(noise).reshape(tuple(shape)),
    )
    return img2img(
        negative_prompt=NEGATIVE, image=image, strength=0.6, output_type="latent", **call
    ).images


def test_sizes_the_unet_does_not_divide_run_on_a_padded_canvas(
    pipe: StableDiffusion, monkeypatch: pytest.MonkeyPatch
) -> None:
    """sd-tiny's UNet takes multiples of 16: 72x64 then 136x120 run on 80x64 and 144x128
    canvases, the latents cropped to the top left after each pass (the second's init edge-padded
    out to its canvas), as a plain txt2img is padded and cropped. The reference composes the
    same from diffusers' pipelines on the same noise."""
    from impasto.engine.hires import run_hires

    hires = HiresParams(width=136, height=120, upscaler="latent", steps=4, strength=0.6)
    params = small(sampler="euler", steps=4, seed=42, width=72, hires=hires)
    assert pipe.generate(params)[0].image.size == (136, 120)
    latents = run_hires(pipe, params, None, None, None).latents
    assert latents.shape == (1, 4, 15, 17)
    first_noise = BatchNoise(42, 1)((1, 4, 8, 10))
    second_noise = BatchNoise(42, 1)((1, 4, 16, 18))  # the seed's noise again, at its canvas
    first = diffusers_txt2img("euler", first_noise, steps=4, width=80, height=64)
    upscaled = torch.nn.functional.interpolate(first[:, :, :8, :9], size=(15, 17), mode="bilinear")
    padded = torch.nn.functional.pad(upscaled, (0, 1, 0, 1), mode="replicate")
    second = diffusers_img2img(
        monkeypatch,
        ("euler", "default"),
        padded,
        second_noise,
        prompt=PROMPT,
        num_inference_steps=4,
        guidance_scale=7.0,
    )
    assert latents_close(latents, second[:, :, :15, :17])


@pytest.mark.parametrize("upscaler", ["lanczos", "nearest"])
def test_image_upscalers_decode_resize_and_encode(pipe: StableDiffusion, upscaler: str) -> None:
    hires = HiresParams(width=96, height=96, upscaler=upscaler, strength=0.5)
    image = pipe.generate(small(seed=3, hires=hires))[0].image
    assert image.size == (96, 96)
    latent = pipe.generate(small(seed=3, hires=HiresParams(width=96, height=96, strength=0.5)))
    assert image.tobytes() != latent[0].image.tobytes()


@pytest.mark.parametrize(
    ("hires", "extra", "field"),
    [
        (HiresParams(width=128, height=128, upscaler="esrgan"), {}, "hires.upscaler"),
        (HiresParams(width=32, height=128), {}, "hires.width"),
        (HiresParams(width=128, height=130), {}, "hires.height"),
        (HiresParams(width=128, height=128, strength=1.5), {}, "hires.strength"),
        (HiresParams(width=128, height=128, sampler="nope"), {}, "hires.sampler"),
        (HiresParams(width=128, height=128, cfg_scale=99.0), {}, "hires.cfg_scale"),
    ],
)
def test_bad_hires_fields_are_named(
    pipe: StableDiffusion, hires: HiresParams, extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as err:
        pipe.generate(small(hires=hires, **extra))
    assert err.value.field == field


def test_hires_is_txt2img_only(pipe: StableDiffusion) -> None:
    from PIL import Image

    image = Image.new("RGB", (64, 64))
    with pytest.raises(InvalidRequestError) as err:
        pipe.generate(small(init_image=image, hires=HiresParams(width=128, height=128)))
    assert err.value.field == "hires"


def test_the_sgm_noise_multiplier_scales_the_first_pass_only(pipe: StableDiffusion) -> None:
    """A1111 scales the txt2img start; its hires pass starts from the first pass's picture."""
    from impasto.engine.hires import run_hires, second_pass

    hires = HiresParams(width=96, height=96, upscaler="latent", steps=3, strength=0.5)
    params = small(sampler="euler", schedule="uniform", hires=hires, sgm_noise_multiplier=True)
    assert second_pass(params, hires, 0).sgm_noise_multiplier is False
    scaled = run_hires(pipe, params, None, None, None).latents
    plain = run_hires(pipe, replace(params, sgm_noise_multiplier=False), None, None, None).latents
    assert scaled.shape == plain.shape and not np.allclose(scaled, plain, atol=1e-3)


@pytest.mark.parametrize(("mode", "second"), [("strength", 3), ("a1111", 4), ("exact", 6)])
def test_the_hires_pass_counts_its_steps_as_asked(
    pipe: StableDiffusion, mode: str, second: int
) -> None:
    """Hires steps 6 at strength 0.5: int(6 x 0.5) = 3 calls (diffusers' way), one more as
    A1111's img2img counts, or all 6 as A1111's hires pass runs them (``exact``: the schedule
    laid out for int(6 / 0.5) = 12 steps, its last 6)."""
    hires = HiresParams(width=96, height=96, upscaler="latent", steps=6, strength=0.5)
    params = small(sampler="euler", steps=4, hires=hires, img2img_steps=mode)
    progress: list[Progress] = []
    pipe.generate(params, progress=progress.append)
    assert [p.total for p in progress] == [4 + second] * (4 + second)
