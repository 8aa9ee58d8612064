"""StableDiffusion: a loaded model folder that turns GenerationParams into images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from impasto.engine.model_folder import ModelFolder, open_model_folder
from impasto.engine.noise import BatchNoise, resolve_seed
from impasto.engine.pipelines.base import Denoise, Guidance, TaskPlan, UNet, latent_shape
from impasto.engine.pipelines.img2img import plan_img2img
from impasto.engine.pipelines.inpaint import plan_inpaint, prepare_inputs
from impasto.engine.pipelines.txt2img import plan_txt2img
from impasto.engine.preview import Previewer
from impasto.engine.providers import ProviderChoice, select_providers
from impasto.engine.schedulers import create_scheduler
from impasto.engine.schedulers.base import Scheduler, SchedulerConfig
from impasto.engine.sessions import OrtModel
from impasto.engine.text_encoder import PromptEncoder
from impasto.engine.tokenizer import ClipTokenizer
from impasto.engine.types import (
    CancelToken,
    EngineError,
    GeneratedImage,
    GenerationParams,
    InvalidRequestError,
    ProgressCallback,
)
from impasto.engine.vae import DEFAULT_TILE_LATENT, DEFAULT_TILE_OVERLAP, Vae, array_to_images
from impasto.engine.validation import validate_params

SchedulerFactory = Callable[[str, SchedulerConfig, str], Scheduler]


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: read from its folder and its session inputs."""

    name: str
    family: str
    dtype: str
    is_inpaint: bool
    prediction_type: str
    default_size: int


@dataclass
class DenoiseResult:
    """Final latents of a run, before decoding, with each image's seed."""

    latents: np.ndarray
    seeds: list[int]
    plan: TaskPlan


def _family(folder: ModelFolder) -> str:
    # Cross-attention width tells SD 1.x (CLIP ViT-L, 768) from SD 2.x (OpenCLIP ViT-H, 1024).
    width = folder.unet_config.get("cross_attention_dim")
    return {768: "sd1", 1024: "sd2"}.get(width if isinstance(width, int) else 0, "custom")


class StableDiffusion:
    """The sessions of one model folder; call ``generate`` repeatedly, never concurrently."""

    def __init__(
        self,
        folder: ModelFolder,
        choice: ProviderChoice,
        *,
        scheduler_factory: SchedulerFactory | None = None,
        tile_latent: int = DEFAULT_TILE_LATENT,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
    ) -> None:
        self.folder = folder
        self.closed = False
        self.choice = choice
        self.scheduler_factory = scheduler_factory or create_scheduler
        self.text_model = OrtModel(folder.text_encoder, choice)
        self.unet = UNet(OrtModel(folder.unet, choice))
        encoder = OrtModel(folder.vae_encoder, choice) if folder.vae_encoder else None
        self.vae = Vae(
            OrtModel(folder.vae_decoder, choice),
            encoder,
            folder.vae_scaling_factor,
            tile_latent=tile_latent,
            tile_overlap=tile_overlap,
        )
        taesd = OrtModel(folder.taesd_decoder, choice) if folder.taesd_decoder else None
        self.previewer = Previewer(taesd)
        self.prompts = PromptEncoder(
            ClipTokenizer(folder.tokenizer_dir, folder.pad_token), self.text_model
        )
        sample_size = folder.unet_config.get("sample_size")
        default_size = sample_size * 8 if isinstance(sample_size, int) else 512
        self.info = ModelInfo(
            name=folder.name,
            family=_family(folder),
            dtype=self.unet.dtype_name,
            is_inpaint=self.unet.is_inpaint,
            prediction_type=folder.scheduler.prediction_type,
            default_size=default_size,
        )

    @property
    def models(self) -> list[OrtModel]:
        """Every open session, for timing and closing."""
        found = [self.text_model, self.unet.model, self.vae.decoder, self.vae.encoder]
        found.append(self.previewer.taesd)
        return [m for m in found if m is not None]

    @property
    def session_seconds(self) -> float:
        """Total time spent inside ONNX Runtime runs since loading."""
        return sum(m.run_seconds for m in self.models)

    def validate(self, params: GenerationParams) -> None:
        """Raise InvalidRequestError if ``params`` cannot run on this model."""
        validate_params(params, has_vae_encoder=self.vae.encoder is not None)
        if self.info.is_inpaint and params.mask_image is None:
            raise InvalidRequestError(
                "mask_image", "this is an inpainting model; it needs an init image and a mask"
            )

    def denoise(
        self,
        params: GenerationParams,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        latents: np.ndarray | None = None,
    ) -> DenoiseResult:
        """Validate, then run the sampler; ``latents`` replaces the seeded starting noise."""
        if self.closed:
            raise EngineError("this pipeline was closed; load the model again")
        self.validate(params)
        batch = params.batch_size
        shape = latent_shape(batch, params.width, params.height)
        if latents is not None and tuple(latents.shape) != shape:
            raise InvalidRequestError("latents", f"shape {latents.shape} must be {shape}")
        if cancel is not None:
            cancel.raise_if_cancelled()
        seed = resolve_seed(params.seed)
        noise = BatchNoise(seed, batch)
        start_noise = noise(shape) if latents is None else latents.astype(np.float32)

        guided = params.cfg_scale > 1.0  # a scale of 1 equals the cond output: skip uncond
        cond, uncond = self.prompts.encode_pair(
            params.prompt, params.negative_prompt if guided else None
        )
        scheduler = self.scheduler_factory(params.sampler, self.folder.scheduler, params.schedule)
        scheduler.set_timesteps(params.steps)
        plan = self._plan(params, scheduler, start_noise)
        denoise = Denoise(
            scheduler=scheduler,
            guidance=Guidance(self.unet, cond, uncond, float(params.cfg_scale), batch),
            noise=noise,
            model_input=plan.model_input,
            after_step=plan.after_step,
            progress=progress,
            cancel=cancel,
            preview_every=params.preview_every,
            previewer=self.previewer,
        )
        final = denoise.run(plan.latents, plan.start)
        return DenoiseResult(latents=final, seeds=noise.seeds, plan=plan)

    def _plan(self, params: GenerationParams, scheduler: Scheduler, noise: np.ndarray) -> TaskPlan:
        if params.init_image is None:
            return plan_txt2img(scheduler, noise)
        if params.mask_image is None:
            return plan_img2img(
                scheduler, self.vae, params.init_image, noise, params.steps, params.strength
            )
        inputs = prepare_inputs(
            self.vae, params.init_image, params.mask_image, noise.shape[0], self.unet.is_inpaint
        )
        return plan_inpaint(
            scheduler,
            inputs,
            params.init_image,
            noise,
            params.steps,
            params.strength,
            overlay=bool(params.extra.get("inpaint_overlay", True)),
        )

    def generate(
        self,
        params: GenerationParams,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        latents: np.ndarray | None = None,
    ) -> list[GeneratedImage]:
        """Images for ``params``, each with the seed that made it (seed + batch index)."""
        result = self.denoise(params, progress, cancel, latents)
        if cancel is not None:
            cancel.raise_if_cancelled()
        images = array_to_images(self.vae.decode(result.latents))
        if result.plan.finish is not None:
            images = result.plan.finish(images)
        return [
            GeneratedImage(image=im, seed=s) for im, s in zip(images, result.seeds, strict=True)
        ]

    def close(self) -> None:
        """Release the sessions; the object cannot generate afterwards."""
        for model in self.models:
            model.close()
        self.closed = True


def load_pipeline(
    model_dir: Path,
    choice: ProviderChoice | None = None,
    *,
    scheduler_factory: SchedulerFactory | None = None,
    tile_latent: int = DEFAULT_TILE_LATENT,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
) -> StableDiffusion:
    """Open a model folder's sessions on ``choice`` (the best provider found when None)."""
    folder = open_model_folder(Path(model_dir))
    return StableDiffusion(
        folder,
        choice or select_providers(),
        scheduler_factory=scheduler_factory,
        tile_latent=tile_latent,
        tile_overlap=tile_overlap,
    )
