"""The SDXL refiner: a second model that runs the last part of the base model's schedule.

As diffusers' ``StableDiffusionXLPipeline(denoising_end=s)`` followed by
``StableDiffusionXLImg2ImgPipeline(denoising_start=s)``: both lay out the same timesteps, the
base runs those at or above the cutoff ``round(T - s * T)``, and the refiner continues from the
base's latents (no re-noising) with its own text conditioning, whose time ids end in an
aesthetic score instead of the target size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from impasto.engine.conditioning import (
    StepCount,
    guidance_for,
    negative_for,
    scheduled_guidance,
)
from impasto.engine.model_folder import open_refiner_folder
from impasto.engine.noise import BatchNoise
from impasto.engine.pipelines.base import Denoise, Guidance, Pair, UNet
from impasto.engine.preview import Previewer
from impasto.engine.providers import ProviderChoice
from impasto.engine.sampler_setup import uncond_skip
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.sdxl import SdxlPromptEncoder
from impasto.engine.sessions import OrtModel
from impasto.engine.text_encoder import PromptEncoder
from impasto.engine.tokenizer import ClipTokenizer
from impasto.engine.types import CancelToken, GenerationParams, ProgressCallback
from impasto.engine.vae import Vae


def switch_index(timesteps: np.ndarray, switch: float, train_timesteps: int) -> int:
    """How many of ``timesteps`` the base runs for a switch fraction (diffusers' rule)."""
    cutoff = round(train_timesteps - switch * train_timesteps)
    return int((np.asarray(timesteps) >= cutoff).sum())


class Refiner:
    """The sessions of an SDXL refiner folder: second text encoder, UNet and VAE decoder."""

    def __init__(
        self,
        root: Path,
        choice: ProviderChoice,
        tiles: tuple[int, int],
        cache_dir: Path | None = None,
    ) -> None:
        self.folder = open_refiner_folder(root)
        folder = self.folder
        self.text_model = OrtModel(folder.text_encoder_2, choice, cache_dir)
        self.unet = UNet(OrtModel(folder.unet, choice, cache_dir))
        self.vae = Vae(
            OrtModel(folder.vae_decoder, choice, cache_dir),
            None,
            folder.vae_scaling_factor,
            tile_latent=tiles[0],
            tile_overlap=tiles[1],
        )
        prompts = PromptEncoder(
            ClipTokenizer(folder.tokenizer_2_dir, folder.pad_token_2), self.text_model
        )
        zeros = folder.model_index.get("force_zeros_for_empty_prompt", False) is True
        self.prompts = SdxlPromptEncoder(None, prompts, zeros, aesthetic=True)

    @property
    def models(self) -> list[OrtModel]:
        """Every open session."""
        return [self.text_model, self.unet.model, self.vae.decoder]

    def refine(
        self,
        params: GenerationParams,
        scheduler: Scheduler,
        count: StepCount,
        latents: np.ndarray,
        calls: tuple[int, int],
        noise: BatchNoise,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        previewer: Previewer | None = None,
    ) -> np.ndarray:
        """Run ``scheduler`` (laid out for every step) from call ``calls[0]`` to the end.

        The base's run began at call ``calls[1]``: progress and the prompt's edits (counted as
        ``count`` says) go on from there.
        """
        start, origin = calls
        cfg = float(params.cfg_scale)
        negative = negative_for(params.prompt, params.negative_prompt, cfg > 1.0, False)

        def encode(prompts: Sequence[str], negative: str | None) -> Pair:
            return self.prompts.encode(
                prompts, negative, params.width, params.height, params.clip_skip
            )

        def build(pair: Pair, weights: tuple[float, ...]) -> Guidance:
            cond, uncond = pair
            return guidance_for(self.unet, cond, uncond, cfg, params.batch_size, None, weights)

        guidance = scheduled_guidance(encode, build, params.prompt, negative, count)
        denoise = Denoise(
            scheduler=scheduler,
            guidance=guidance,
            noise=noise,
            progress=progress,
            cancel=cancel,
            preview_every=params.preview_every,
            previewer=previewer,
            uncond_skip=uncond_skip(params, self.folder.scheduler),
        )
        if start > origin:  # the base model ran the steps before: its latents come prepared
            scheduler.resume_at(start)
        return denoise.run(latents, start, origin=origin)

    def close(self) -> None:
        """Release the sessions."""
        for model in self.models:
            model.close()
