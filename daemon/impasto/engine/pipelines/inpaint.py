"""Inpaint: repaint the white part of a mask, with a 9-channel inpainting UNet or any UNet.

An inpainting UNet gets the mask and the masked image's latents as 5 extra input channels
(and, running with no mask, a mask of ones beside the picture faded, or grey: A1111's
conditioning, ``unmasked_input``).
A regular UNet gets latent blending instead: after every step the kept (black) region is reset
to the init latents noised to the next step's level, and to the clean latents after the last.
Either way the kept region of the output is then pasted from the init image, as AUTOMATIC1111
does, because a VAE round trip alone blurs it (a grey edge, a blurred mask's, blends the two:
``kept_alpha``); ``overlay=False`` turns that off.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from impasto.engine.inpaint_area import fill_masked, kept_alpha, masked_start, pasted_back
from impasto.engine.pipelines.base import ModelInputFn, TaskPlan
from impasto.engine.pipelines.img2img import encode_init_image, noised_start
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.types import GenerationParams
from impasto.engine.vae import VAE_FACTOR, Vae, image_to_array


def binary_mask(mask: Image.Image) -> np.ndarray:
    """The mask as float32 [H, W] of 0 (keep) and 1 (repaint), thresholded at half grey."""
    grey = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
    return (grey >= 0.5).astype(np.float32)


def latent_mask(pixel_mask: np.ndarray, batch: int) -> np.ndarray:
    """[batch, 1, h, w]: nearest-neighbour downsampling by 8, as torch's interpolate does."""
    small = pixel_mask[::VAE_FACTOR, ::VAE_FACTOR]
    return np.broadcast_to(small, (batch, 1, *small.shape)).astype(np.float32)


def shown_picture(image: np.ndarray, pixel_mask: np.ndarray, weight: float) -> np.ndarray:
    """The picture a 9-channel UNet is shown beside the mask, as A1111 makes it:
    lerp(image, image x (1 - mask), weight) = image x (1 - weight x mask); at weight 1 (the
    default) what is masked is 0, grey, and at 0 the whole picture shows."""
    return (image * (1.0 - weight * pixel_mask)).astype(np.float32)


def unmasked_input(
    vae: Vae, source: np.ndarray | None, weight: float, shape: tuple[int, ...]
) -> ModelInputFn:
    """A 9-channel UNet's extra channels for a run with no mask, as A1111 conditions it: all
    of the picture to repaint (a mask of ones) beside ``source`` (an [N, 3, H, W] picture in
    [-1, 1]) faded by ``weight``; txt2img, with no picture, shows a grey one. Encoded once."""
    batch, _, height, width = shape
    if source is None or weight >= 1.0:
        pixels = np.zeros((1, 3, height * VAE_FACTOR, width * VAE_FACTOR), np.float32)
    else:
        pixels = shown_picture(source, np.ones(source.shape[-2:], np.float32), weight)
    latents = vae.encode(pixels)
    latents = np.repeat(latents, batch // len(latents), axis=0) if len(latents) < batch else latents
    ones = np.ones((batch, 1, height, width), np.float32)
    extra = np.concatenate([ones, latents], axis=1)

    def model_input(scaled: np.ndarray, index: int) -> np.ndarray:
        return np.concatenate([scaled, extra], axis=1)

    return model_input


def conditioned(
    plan: TaskPlan, vae: Vae, params: GenerationParams, init_latents: np.ndarray | None
) -> TaskPlan:
    """``plan`` (a run with no mask) with a 9-channel UNet's extra channels: the picture it
    starts from is a hires pass's latents decoded (as A1111 decodes them), else the init
    image; a txt2img run has none. Only a weight below 1 shows it, so only then is it read."""
    weight, source = params.inpaint_mask_weight, None
    if weight < 1.0 and init_latents is not None:
        source = vae.decode(init_latents)
    elif weight < 1.0 and params.init_image is not None:
        source = image_to_array(params.init_image)
    return replace(plan, model_input=unmasked_input(vae, source, weight, plan.latents.shape))


@dataclass
class InpaintInputs:
    """Mask and latents shared by every step of one inpaint run."""

    pixel_mask: np.ndarray
    mask: np.ndarray
    init_latents: np.ndarray
    masked_latents: np.ndarray | None
    keep: Image.Image
    """The paste-back's alpha of the init image (``kept_alpha``)."""


def prepare_inputs(
    vae: Vae,
    image: Image.Image,
    mask_image: Image.Image,
    batch: int,
    inpaint_unet: bool,
    masked_content: str = "original",
    weight: float = 1.0,
) -> InpaintInputs:
    """Encode the init image (and, for a 9-channel UNet, the picture it is shown) once.

    ``masked_content`` other than ``original`` paints the masked part in the colours around
    it first (``fill_masked``);
    ``weight`` fades the masked part of the shown picture (``shown_picture``).
    """
    pixel_mask = binary_mask(mask_image)
    # As A1111: any content but the original starts from the fill (noise and nothing then
    # replace the masked latents; the fill still reaches the kept ones the VAE sees with them).
    start_image = image if masked_content == "original" else fill_masked(image, mask_image)
    masked_latents = None
    if inpaint_unet:
        masked = shown_picture(image_to_array(image), pixel_mask, weight)
        masked_latents = np.repeat(vae.encode(masked), batch, axis=0)
    return InpaintInputs(
        pixel_mask=pixel_mask,
        mask=latent_mask(pixel_mask, batch),
        init_latents=encode_init_image(vae, start_image, batch),
        masked_latents=masked_latents,
        keep=kept_alpha(mask_image),
    )


def plan_inpaint(
    scheduler: Scheduler,
    inputs: InpaintInputs,
    init_image: Image.Image,
    noise: np.ndarray,
    steps: int,
    strength: float,
    *,
    overlay: bool = True,
    masked_content: str = "original",
    multiplier: float = 1.0,
    extra: float = 0.0,
    mode: str = "strength",
) -> TaskPlan:
    """The plan for either UNet kind; ``inputs.masked_latents`` says which.

    ``masked_content`` ``latent_noise``/``latent_nothing`` start the masked part from noise or
    zeros instead of the init image's latents (below strength 1; above, all is noise).
    ``multiplier`` scales the start's noise (A1111's "Noise multiplier") and ``extra`` adds
    it once more (A1111's "Extra noise"); the noise that re-noises the kept part at each step
    is the seed's own. ``mode`` counts the steps (``image_steps.image_steps``).
    """
    if strength >= 1.0 and multiplier == 1.0 and not extra:
        # Full strength starts from pure noise like txt2img (diffusers does the same).
        latents, start = (noise * np.float32(scheduler.init_noise_sigma)).astype(np.float32), 0
    else:
        # A scaled noise at full strength keeps A1111's start: the init image plus that noise.
        first = masked_start(inputs.init_latents, inputs.mask, noise, masked_content)
        latents, start = noised_start(
            scheduler, first, noise, steps, strength, multiplier, extra, mode
        )

    def model_input(scaled: np.ndarray, index: int) -> np.ndarray:
        assert inputs.masked_latents is not None
        return np.concatenate([scaled, inputs.mask, inputs.masked_latents], axis=1)

    def blend(latents: np.ndarray, index: int) -> np.ndarray:
        # Read at each step: an adaptive sampler lays out its calls as it goes.
        if index < len(scheduler.timesteps) - 1:
            proper = scheduler.add_noise(inputs.init_latents, noise, index + 1)
        else:
            proper = inputs.init_latents
        return ((1.0 - inputs.mask) * proper + inputs.mask * latents).astype(np.float32)

    def finish(images: list[Image.Image]) -> list[Image.Image]:
        return pasted_back(images, init_image, inputs.keep)

    regular = inputs.masked_latents is None
    return TaskPlan(
        latents=latents,
        start=start,
        model_input=None if regular else model_input,
        after_step=blend if regular else None,
        finish=finish if overlay else None,
    )
