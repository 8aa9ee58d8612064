"""Hires fix, as AUTOMATIC1111 runs it: a txt2img pass at the base size, an upscale (in latent
space, or of the decoded image), then an img2img pass at the target size with its own steps,
strength, sampler, prompt and CFG. Progress counts the UNet calls of both passes as one run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from impasto.engine.image_upscale import ModelUpscaler, upscale_to
from impasto.engine.padding import padded_size
from impasto.engine.pipelines.image_steps import start_index
from impasto.engine.pipelines.img2img import encode_init_image
from impasto.engine.sampler_setup import build_scheduler, laid_out_steps
from impasto.engine.schedulers import sampler_schedules
from impasto.engine.types import (
    CancelToken,
    GenerationParams,
    HiresParams,
    Progress,
    ProgressCallback,
)
from impasto.engine.upscale_latents import LATENT_MODES, upscale_latents
from impasto.engine.vae import VAE_FACTOR, array_to_images

if TYPE_CHECKING:
    from impasto.engine.pipeline import DenoiseResult, StableDiffusion

IMAGE_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "nearest": Image.Resampling.NEAREST}


def second_pass(params: GenerationParams, hires: HiresParams, seed: int) -> GenerationParams:
    """The img2img pass at the target size: the first pass's settings where hires has none."""
    sampler = hires.sampler or params.sampler
    schedule = hires.schedule or params.schedule
    if schedule not in sampler_schedules(sampler):
        # The first pass's schedule, which a hires sampler of another kind may not have.
        schedule = "default"
    return replace(
        params,
        prompt=hires.prompt or params.prompt,
        negative_prompt=params.negative_prompt
        if hires.negative_prompt is None
        else hires.negative_prompt,
        width=hires.width,
        height=hires.height,
        steps=hires.steps or params.steps,
        cfg_scale=params.cfg_scale if hires.cfg_scale is None else hires.cfg_scale,
        sampler=sampler,
        schedule=schedule,
        strength=hires.strength,
        seed=seed,
        hires=None,
        sgm_noise_multiplier=False,  # it starts from the first pass's picture
        noise_multiplier=1.0,  # A1111's is img2img's only
    )


class TwoPassProgress:
    """Reports both passes as one run of ``first + second`` UNet calls."""

    def __init__(self, progress: ProgressCallback, second_calls: int) -> None:
        self.progress = progress
        self.second_calls = second_calls
        self.first_calls = 0

    def first(self, p: Progress) -> None:
        self.first_calls = p.total
        self.progress(Progress(p.step, p.total + self.second_calls, p.preview))

    def second(self, p: Progress) -> None:
        self.progress(Progress(self.first_calls + p.step, self.first_calls + p.total, p.preview))


def upscaled_latents(
    pipe: StableDiffusion, params: GenerationParams, latents: np.ndarray, hires: HiresParams
) -> np.ndarray:
    """The first pass's latents at the target size: resized, or decoded, resized and encoded."""
    if hires.upscaler in LATENT_MODES:
        size = (hires.height // VAE_FACTOR, hires.width // VAE_FACTOR)
        return upscale_latents(latents, *size, hires.upscaler)
    vae = pipe.vae_for(params)
    images = array_to_images(vae.decode(latents))
    rows = [encode_init_image(vae, upscaled_image(image, hires), 1) for image in images]
    return np.concatenate(rows)


def upscaled_image(image: Image.Image, hires: HiresParams) -> Image.Image:
    """One decoded first-pass image at the target size: a PIL resize, or the super-resolution
    model then Lanczos to the exact size (A1111's ``resize_image`` with a model upscaler)."""
    size = (hires.width, hires.height)
    if hires.upscaler_model is not None:
        return upscale_to(image, ModelUpscaler(hires.upscaler_model), *size)
    return image.resize(size, IMAGE_FILTERS[hires.upscaler])


def run_hires(
    pipe: StableDiffusion,
    params: GenerationParams,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    latents: np.ndarray | None,
) -> DenoiseResult:
    """Both passes; the second starts its noise generators again from the seeds (its start is
    the seeds' noise at its size, a variation seed and a resized seed moving it the same way),
    as A1111 makes a new ``ImageRNG`` for it."""
    hires = params.hires
    assert hires is not None
    pipe.validate(params)
    first_params = replace(params, hires=None)
    probe = second_pass(params, hires, 0)
    scheduler = build_scheduler(pipe.scheduler_factory, probe, pipe.folder.scheduler)
    scheduler.set_timesteps(laid_out_steps(probe))
    first_call = start_index(scheduler, probe.steps, probe.strength, probe.img2img_steps)
    counter = TwoPassProgress(progress, len(scheduler.timesteps) - first_call) if progress else None
    # A size the UNet does not divide whole runs on a larger canvas, cropped after each pass
    # (as a plain txt2img is: engine/padding.py).
    canvas = padded_size(params.width, params.height, pipe.size_multiple)
    first_run = first_params
    if latents is None:  # given start latents fix the size
        first_run = replace(first_params, width=canvas[0], height=canvas[1])
    first = pipe.denoise(first_run, counter.first if counter else None, cancel, latents)
    if cancel is not None:
        cancel.raise_if_cancelled()
    first_latents = _crop(first.latents, params.width, params.height)
    init = upscaled_latents(pipe, first_params, first_latents, hires)
    if first.noise is not None:
        # The second pass starts from the seeds' own noise at its size, as A1111 draws it.
        first.noise.restart()
    second = second_pass(params, hires, first.seeds[0])
    canvas = padded_size(hires.width, hires.height, pipe.size_multiple)
    if canvas != (hires.width, hires.height):
        init = _edge_pad(init, *canvas)
        second = replace(second, width=canvas[0], height=canvas[1])
    result = pipe.denoise(
        second,
        counter.second if counter else None,
        cancel,
        init_latents=init,
        noise=first.noise,
        first_pass_steps=params.steps,
    )
    return replace(result, latents=_crop(result.latents, hires.width, hires.height))


def _crop(latents: np.ndarray, width: int, height: int) -> np.ndarray:
    """The top-left ``width`` x ``height`` pixels' worth of ``latents``."""
    return latents[:, :, : height // VAE_FACTOR, : width // VAE_FACTOR]


def _edge_pad(latents: np.ndarray, width: int, height: int) -> np.ndarray:
    """``latents`` extended right and down to ``width`` x ``height`` pixels by their edges."""
    rows = height // VAE_FACTOR - latents.shape[2]
    cols = width // VAE_FACTOR - latents.shape[3]
    return np.pad(latents, [(0, 0), (0, 0), (0, rows), (0, cols)], mode="edge")
