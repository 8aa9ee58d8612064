"""Inpainting with a 9-channel inpainting UNet and with a regular UNet (latent blending)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.pipelines.stable_diffusion import pipeline_stable_diffusion_inpaint
from optimum.onnxruntime import ORTStableDiffusionInpaintPipeline
from PIL import Image

from impasto.engine import StableDiffusion, load_pipeline
from impasto.engine.pipelines.img2img import encode_init_image
from impasto.engine.pipelines.inpaint import latent_mask, prepare_inputs
from impasto.engine.providers import cpu_choice

from .conftest import TINY, small
from .families_oracle import latents_close
from .test_pipeline_latents import set_scheduler


def _init_image() -> Image.Image:
    pixels = np.random.default_rng(3).uniform(0, 255, (64, 64, 3)).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _right_half_mask() -> Image.Image:
    mask = np.zeros((64, 64), np.uint8)
    mask[:, 32:] = 255  # white: repaint
    return Image.fromarray(mask, "L")


def test_regular_unet_keeps_the_masked_out_latents_by_blending(pipe: StableDiffusion) -> None:
    image, mask = _init_image(), _right_half_mask()
    params = small(init_image=image, mask_image=mask, strength=1.0, steps=5)
    result = pipe.denoise(params)
    init = encode_init_image(pipe.vae, image, batch=1)
    keep = np.broadcast_to(latent_mask(np.asarray(mask, np.float32) / 255, 1) == 0, init.shape)
    np.testing.assert_allclose(result.latents[keep], init[keep], atol=1e-6)
    assert np.abs(result.latents[~keep] - init[~keep]).mean() > 0.1


def test_regular_unet_output_keeps_the_init_pixels_and_repaints_the_rest(
    pipe: StableDiffusion,
) -> None:
    image, mask = _init_image(), _right_half_mask()
    out = pipe.generate(small(init_image=image, mask_image=mask, strength=1.0, steps=5))[0].image
    ours, init = np.asarray(out, np.int32), np.asarray(image, np.int32)
    assert np.array_equal(ours[:, :32], init[:, :32])
    assert np.abs(ours[:, 32:] - init[:, 32:]).mean() > 20
    # The overlay is what makes the kept half pixel-exact; without it the kept half is the
    # VAE's decode of the kept latents, which on this random VAE mixes in the repainted half.
    raw = pipe.generate(
        small(
            init_image=image,
            mask_image=mask,
            strength=1.0,
            steps=5,
            extra={"inpaint_overlay": False},
        )
    )[0].image
    assert not np.array_equal(np.asarray(raw, np.int32)[:, :32], init[:, :32])
    assert np.array_equal(np.asarray(raw, np.int32)[:, 32:], ours[:, 32:])


def test_inpainting_unet_gets_mask_and_masked_image_channels(
    pipe_inpaint: StableDiffusion,
) -> None:
    seen: list[np.ndarray] = []
    run = pipe_inpaint.unet.run

    def spy(sample: np.ndarray, t: float, hidden: object) -> np.ndarray:
        seen.append(sample)
        return run(sample, t, hidden)

    image, mask = _init_image(), _right_half_mask()
    pipe_inpaint.unet.run = spy  # type: ignore[method-assign]
    try:
        params = small(init_image=image, mask_image=mask, steps=3, strength=1.0)
        out = pipe_inpaint.generate(params)[0].image
    finally:
        del pipe_inpaint.unet.run
    assert len(seen) == 3 and seen[0].shape == (2, 9, 8, 8)  # cond + uncond, 4 + 1 + 4 channels
    np.testing.assert_array_equal(seen[0][:, 4], np.tile([0.0] * 4 + [1.0] * 4, (2, 8, 1)))
    masked = np.asarray(image, np.float32) / 127.5 - 1
    masked[:, 32:] = 0
    masked_latents = pipe_inpaint.vae.encode(masked.transpose(2, 0, 1)[None])
    np.testing.assert_allclose(seen[0][:1, 5:], masked_latents, atol=1e-5)
    ours, init = np.asarray(out, np.int32), np.asarray(image, np.int32)
    assert np.array_equal(ours[:, :32], init[:, :32])
    assert np.abs(ours[:, 32:] - init[:, 32:]).mean() > 20


def test_inpainting_unet_output_depends_on_the_mask(pipe_inpaint: StableDiffusion) -> None:
    image = _init_image()
    other = _right_half_mask().transpose(Image.Transpose.ROTATE_90)
    extra = {"inpaint_overlay": False}
    a = pipe_inpaint.generate(small(init_image=image, mask_image=_right_half_mask(), extra=extra))
    b = pipe_inpaint.generate(small(init_image=image, mask_image=other, extra=extra))
    assert not np.array_equal(np.asarray(a[0].image), np.asarray(b[0].image))


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m"])
@pytest.mark.parametrize("strength", [1.0, 0.75])
@pytest.mark.parametrize("folder", ["sd-tiny", "sd-tiny-inpaint"])
def test_inpaint_latents_match_diffusers_inpaint_pipeline(
    folder: str, strength: float, sampler: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against optimum's inpaint pipeline (diffusers' code): 9-channel and regular UNets.

    Both sides get our init and masked-image latents (diffusers would sample the VAE's
    posterior with its own generator) and our start noise.
    """
    pipe = load_pipeline(TINY / folder, cpu_choice())
    ref = ORTStableDiffusionInpaintPipeline.from_pretrained(
        TINY / folder, provider="CPUExecutionProvider"
    )
    set_scheduler(ref, sampler)
    image, mask = _init_image(), _right_half_mask()
    noise = np.random.default_rng(9).standard_normal((1, 4, 8, 8)).astype(np.float32)
    params = small(init_image=image, mask_image=mask, strength=strength, steps=6, sampler=sampler)
    ours = pipe.denoise(params, latents=noise).latents
    inputs = prepare_inputs(pipe.vae, image, mask, 1, pipe.unet.is_inpaint)
    monkeypatch.setattr(
        pipeline_stable_diffusion_inpaint, "randn_tensor", lambda *_, **__: torch.from_numpy(noise)
    )
    # A regular UNet never sees masked-image latents; any 4 channels keep diffusers from
    # masking our latents with the full-size mask.
    masked = inputs.init_latents if inputs.masked_latents is None else inputs.masked_latents
    theirs = ref(
        prompt="a red cat in a garden",
        negative_prompt="blurry",
        image=torch.from_numpy(inputs.init_latents),
        mask_image=mask,
        height=64,
        width=64,
        strength=strength,
        num_inference_steps=6,
        guidance_scale=7.0,
        output_type="latent",
        masked_image_latents=torch.from_numpy(masked),
    ).images
    assert latents_close(ours, theirs)
    # The test bites: a 0.1% error in the model output is caught.
    run = pipe.unet.run
    monkeypatch.setattr(pipe.unet, "run", lambda *a, **k: run(*a, **k) * np.float32(1.001))
    assert not latents_close(pipe.denoise(params, latents=noise).latents, theirs)
