"""Our pipelines against optimum's ONNX Runtime pipelines on the same tiny models and noise.

Reference side: optimum's ORT pipelines run diffusers' torch pipeline code around the same ONNX
sessions, with the scheduler swapped for the diffusers class that matches our sampler.

img2img: both sides must start from the same init latents and the same noise. Our VAE encode
uses the posterior mean (diffusers samples it with a torch generator), so we pass our init
latents to diffusers as a 4-channel ``image`` (which it uses as latents directly, unscaled) and
replace its ``randn_tensor`` with one that returns our noise. A separate test checks our
encode equals the mean of optimum's VAE encoder output times the scaling factor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_img2img
from optimum.onnxruntime import ORTStableDiffusionImg2ImgPipeline, ORTStableDiffusionPipeline
from PIL import Image

from impasto.engine import StableDiffusion
from impasto.engine.pipelines.img2img import encode_init_image

from .conftest import SD_TINY, SD_TINY_V, SIZE, small

MAX_PIXEL_DIFF = 2  # out of 255
SAMPLERS: dict[str, tuple[type, dict[str, Any]]] = {
    "euler": (EulerDiscreteScheduler, {}),
    # The folder's config has no clip_sample key, so DDIMScheduler would fall back to its own
    # default (True) where SD's scheduler configs say False; ours reads False as SD does.
    "ddim": (DDIMScheduler, {"clip_sample": False}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {}),
}
PROMPT, NEGATIVE = "a red cat in a garden", "blurry"


def _reference(cls: Any, folder: Any) -> Any:
    return cls.from_pretrained(folder, provider="CPUExecutionProvider")


def _noise(seed: int = 7) -> np.ndarray:
    return (
        np.random.default_rng(seed).standard_normal((1, 4, SIZE // 8, SIZE // 8)).astype(np.float32)
    )


def _max_diff(reference: np.ndarray, ours: Image.Image) -> int:
    ref = (reference * 255).round().astype(np.int32)
    assert ref.std() > 10, "the reference image is flat; the comparison would prove nothing"
    return int(np.abs(ref - np.asarray(ours, dtype=np.int32)).max())


def _set_scheduler(ref: Any, sampler: str) -> None:
    cls, overrides = SAMPLERS[sampler]
    ref.scheduler = cls.from_config(ref.scheduler.config, **overrides)


@pytest.fixture(scope="module")
def ref_txt2img() -> Any:
    return _reference(ORTStableDiffusionPipeline, SD_TINY)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_txt2img_matches_optimum(pipe: StableDiffusion, ref_txt2img: Any, sampler: str) -> None:
    noise = _noise()
    _set_scheduler(ref_txt2img, sampler)
    reference = ref_txt2img(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=5,
        guidance_scale=7.0,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(noise),
        output_type="np",
    ).images[0]
    ours = pipe.generate(small(sampler=sampler, steps=5), latents=noise)[0].image
    assert _max_diff(reference, ours) <= MAX_PIXEL_DIFF


def test_v_prediction_txt2img_matches_optimum(pipe_v: StableDiffusion) -> None:
    assert pipe_v.info.prediction_type == "v_prediction"
    ref = _reference(ORTStableDiffusionPipeline, SD_TINY_V)
    _set_scheduler(ref, "euler")
    noise = _noise(3)
    reference = ref(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        num_inference_steps=5,
        guidance_scale=5.0,
        height=SIZE,
        width=SIZE,
        latents=torch.from_numpy(noise),
        output_type="np",
    ).images[0]
    ours = pipe_v.generate(small(steps=5, cfg_scale=5.0), latents=noise)[0].image
    assert _max_diff(reference, ours) <= MAX_PIXEL_DIFF


def _init_image() -> Image.Image:
    rng = np.random.default_rng(11)
    gradient = np.linspace(0, 255, SIZE, dtype=np.float32)
    pixels = np.stack([gradient[None, :].repeat(SIZE, 0), gradient[:, None].repeat(SIZE, 1)])
    pixels = np.concatenate([pixels, rng.uniform(0, 255, (1, SIZE, SIZE))]).transpose(1, 2, 0)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def test_vae_encode_is_the_scaled_posterior_mean(pipe: StableDiffusion) -> None:
    ref = _reference(ORTStableDiffusionImg2ImgPipeline, SD_TINY)
    image = _init_image()
    tensor = ref.image_processor.preprocess(image)
    expected = ref.vae.encode(tensor).latent_dist.mean.numpy() * ref.vae.config.scaling_factor
    ours = encode_init_image(pipe.vae, image, batch=1)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("sampler", ["euler", "ddim", "dpmpp_2m"])
def test_img2img_matches_optimum(
    pipe: StableDiffusion, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _reference(ORTStableDiffusionImg2ImgPipeline, SD_TINY)
    _set_scheduler(ref, sampler)
    image, noise = _init_image(), _noise(5)
    init_latents = encode_init_image(pipe.vae, image, batch=1)
    monkeypatch.setattr(
        pipeline_stable_diffusion_img2img,
        "randn_tensor",
        lambda shape, **_: torch.from_numpy(noise).reshape(shape),
    )
    reference = ref(
        prompt=PROMPT,
        negative_prompt=NEGATIVE,
        image=torch.from_numpy(init_latents),
        strength=0.6,
        num_inference_steps=8,
        guidance_scale=7.0,
        output_type="np",
    ).images[0]
    params = small(sampler=sampler, steps=8, init_image=image, strength=0.6)
    ours = pipe.generate(params, latents=noise)[0].image
    assert _max_diff(reference, ours) <= MAX_PIXEL_DIFF
