"""StableDiffusion: a loaded model folder that turns GenerationParams into images."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from impasto.engine.adapters import AdapterCache, Components, final_norm_loader
from impasto.engine.color_correction import color_corrected, reference
from impasto.engine.conditioning import StepCount, build_guidance
from impasto.engine.families import FamilyDefaults, detect_family, family_defaults
from impasto.engine.hires import run_hires
from impasto.engine.inpaint_area import run_masked_area
from impasto.engine.latent_resize import run_latent_resized
from impasto.engine.model_folder import ModelFolder, open_model_folder
from impasto.engine.noise import BatchNoise, run_noise
from impasto.engine.padding import pad_params, padded_size, size_multiple
from impasto.engine.pipelines.base import Denoise, TaskPlan, UNet, latent_shape
from impasto.engine.pipelines.task import task_plan
from impasto.engine.preview import FastDecoder, Previewer
from impasto.engine.providers import ProviderChoice, select_providers
from impasto.engine.refiner import Refiner, switch_index
from impasto.engine.sampler_setup import (
    SchedulerFactory,
    build_scheduler,
    check_bounds,
    laid_out_steps,
    uncond_skip,
)
from impasto.engine.schedulers import create_scheduler
from impasto.engine.sd_upscale import run_sd_upscale
from impasto.engine.seamless import tiling_axes
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
from impasto.engine.vae_set import VaeSet
from impasto.engine.validation import (
    check_latent_resize,
    check_mask_weight,
    check_tiling,
    validate_params,
)


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is: read from its folder and its session inputs."""

    name: str
    family: str
    dtype: str
    is_inpaint: bool
    prediction_type: str
    default_size: int
    defaults: FamilyDefaults | None = None  # the family's steps/cfg/sampler at default_size


@dataclass
class DenoiseResult:
    """Final latents of a run, before decoding, with each image's seed."""

    latents: np.ndarray
    seeds: list[int]
    plan: TaskPlan
    warnings: list[str]
    refiner: Refiner | None = None  # set when a refiner ran the last steps
    noise: BatchNoise | None = None  # the generators, to continue in a hires pass


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
        cache_dir: Path | None = None,
    ) -> None:
        self.folder = folder
        self.closed = False
        self.choice = choice
        self.scheduler_factory = scheduler_factory or create_scheduler
        self.text_model = OrtModel(folder.text_encoder, choice, cache_dir)
        self.unet = UNet(OrtModel(folder.unet, choice, cache_dir))
        encoder = OrtModel(folder.vae_encoder, choice, cache_dir) if folder.vae_encoder else None
        self.vae = Vae(
            OrtModel(folder.vae_decoder, choice, cache_dir),
            encoder,
            folder.vae_scaling_factor,
            tile_latent=tile_latent,
            tile_overlap=tile_overlap,
        )
        own = folder.taesd_decoder
        self.fast_decoder = FastDecoder(OrtModel(own, choice, cache_dir)) if own else None
        self._fast: dict[Path, FastDecoder] = {}
        self.prompts = PromptEncoder(
            ClipTokenizer(folder.tokenizer_dir, folder.pad_token),
            self.text_model,
            final_norm_loader(folder.text_encoder, folder.text_config),
        )
        self.text_model_2 = None
        prompts_2 = None
        if folder.text_encoder_2 is not None and folder.tokenizer_2_dir is not None:
            self.text_model_2 = OrtModel(folder.text_encoder_2, choice, cache_dir)
            prompts_2 = PromptEncoder(
                ClipTokenizer(folder.tokenizer_2_dir, folder.pad_token_2), self.text_model_2
            )
        base = Components(self.prompts, prompts_2, self.unet)
        self.adapters = AdapterCache(folder, choice, base, cache_dir)
        self.vaes = VaeSet(self.vae, folder, choice, (tile_latent, tile_overlap), cache_dir)
        self._refiners: dict[Path, Refiner] = {}
        self._cache_dir = cache_dir
        self.size_multiple = size_multiple(folder.unet_config)
        self._tiles = (tile_latent, tile_overlap)
        sample_size = folder.unet_config.get("sample_size")
        default_size = sample_size * 8 if isinstance(sample_size, int) else 512
        family = detect_family(folder)
        defaults = family_defaults(family)
        self.info = ModelInfo(
            name=folder.name,
            family=family,
            dtype=self.unet.dtype_name,
            is_inpaint=self.unet.is_inpaint,
            prediction_type=folder.scheduler.prediction_type,
            default_size=default_size,
            defaults=FamilyDefaults(
                defaults.steps, defaults.cfg_scale, default_size, default_size, defaults.sampler
            ),
        )

    @property
    def models(self) -> list[OrtModel]:
        """Every open session, for timing and closing."""
        found = [self.text_model, self.text_model_2, self.unet.model, self.unet.shallow]
        found += [self.vae.decoder, self.vae.encoder]
        found += [f.model for f in [self.fast_decoder, *self._fast.values()] if f is not None]
        for components in self.adapters.sets.values():
            found += components.owned
        found += self.vaes.models
        for refiner in self._refiners.values():
            found += refiner.models
        return [m for m in found if m is not None]

    @property
    def session_seconds(self) -> float:
        """Total time spent inside ONNX Runtime runs since loading."""
        return sum(m.run_seconds for m in self.models)

    def validate(self, params: GenerationParams) -> None:
        """Raise InvalidRequestError if ``params`` cannot run on this model."""
        validate_params(params, has_vae_encoder=self.vae.encoder is not None)
        check_tiling(params, self.size_multiple)
        check_bounds(params, self.folder.scheduler)
        if params.decoder == "fast" and self.fast_decoder_for(params) is None:
            raise InvalidRequestError(
                "decoder",
                "fast needs a TAESD decoder and none is installed for this model; install one "
                "with `impasto pull taesd` (taesdxl for SDXL models)",
            )
        check_mask_weight(params.inpaint_mask_weight, self.info.is_inpaint)
        check_latent_resize(params.latent_resize, self.info.is_inpaint, masked=False)

    def denoise(
        self,
        params: GenerationParams,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        latents: np.ndarray | None = None,
        *,
        init_latents: np.ndarray | None = None,
        noise: BatchNoise | None = None,
        first_pass_steps: int | None = None,
    ) -> DenoiseResult:
        """Validate, then run the sampler; ``latents`` replaces the seeded starting noise.

        ``init_latents`` starts an img2img run from latents (a hires pass) instead of an
        image; ``noise`` continues generators instead of seeding new ones; in a hires pass,
        ``first_pass_steps`` (the first pass's) places the prompt's edits as A1111 does.
        """
        if self.closed:
            raise EngineError("this pipeline was closed; load the model again")
        self.validate(params)
        shape = latent_shape(params.batch_size, params.width, params.height)
        if latents is not None and tuple(latents.shape) != shape:
            raise InvalidRequestError("latents", f"shape {latents.shape} must be {shape}")
        if cancel is not None:
            cancel.raise_if_cancelled()
        if noise is None:
            noise = run_noise(params)
        start_noise = noise(shape) if latents is None else latents.astype(np.float32)

        seamless = tiling_axes(params.tiling)
        parts = self.adapters.get(params.loras, params.embeddings, seamless=seamless)
        scheduler = build_scheduler(self.scheduler_factory, params, self.folder.scheduler)
        from_image = init_latents is not None or params.init_image is not None
        laid = laid_out_steps(params) if from_image else params.steps
        scheduler.set_timesteps(laid)
        count = StepCount.of(scheduler, params.steps, first_pass_steps, laid)
        guidance = build_guidance(parts, params, self.folder.model_index, count)
        vae = self.vae_for(params)
        plan = task_plan(params, scheduler, vae, start_noise, self.unet.is_inpaint, init_latents)
        previewer = Previewer(self.fast_decoder_for(params))
        denoise = Denoise(
            scheduler=scheduler,
            guidance=guidance,
            noise=noise,
            model_input=plan.model_input,
            after_step=plan.after_step,
            progress=progress,
            cancel=cancel,
            preview_every=params.preview_every,
            previewer=previewer,
            uncond_skip=uncond_skip(params, self.folder.scheduler),
        )
        steps = len(scheduler.timesteps)
        switch = steps
        if params.refiner is not None:
            train = self.folder.scheduler.num_train_timesteps
            base_steps = switch_index(scheduler.timesteps, params.refiner_switch, train)
            switch = max(base_steps, plan.start)
        final = denoise.run(plan.latents, plan.start, end=switch if switch < steps else None)
        refiner = None
        if params.refiner is not None and switch < steps:
            refiner = self.refiner_for(params.refiner)
            # A fresh scheduler from the refiner's config, laid out like the base's.
            second = build_scheduler(self.scheduler_factory, params, refiner.folder.scheduler)
            second.set_timesteps(laid)
            final = refiner.refine(
                params,
                second,
                count,
                final,
                (switch, plan.start),
                noise,
                progress,
                cancel,
                previewer,
            )
        return DenoiseResult(final, noise.seeds, plan, parts.warnings, refiner, noise)

    def fast_decoder_for(self, params: GenerationParams) -> FastDecoder | None:
        """The model's own TAESD decoder, else the installed one the request names, or None."""
        if self.fast_decoder is not None or params.fast_decoder is None:
            return self.fast_decoder
        key = Path(params.fast_decoder).resolve()
        if key not in self._fast:
            path = key / "taesd_decoder" / "model.onnx"
            if not path.is_file():
                raise EngineError(f"{path}: missing; reinstall the fast decoder")
            self._fast[key] = FastDecoder(OrtModel(path, self.choice, self._cache_dir))
        return self._fast[key]

    def refiner_for(self, root: Path) -> Refiner:
        """The SDXL refiner in ``root``, opened on first use (only the latest one stays open)."""
        key = Path(root).resolve()
        if key not in self._refiners:
            for old in self._refiners.values():
                old.close()
            self._refiners = {key: Refiner(key, self.choice, self._tiles, self._cache_dir)}
        return self._refiners[key]

    def vae_for(self, params: GenerationParams) -> Vae:
        """The VAE the request decodes with: the model's, or the swapped-in one it names; the
        wrapping one for seamless tiling."""
        return self.vaes.get(params.vae_dir, tiling_axes(params.tiling))

    def generate(
        self,
        params: GenerationParams,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        latents: np.ndarray | None = None,
    ) -> list[GeneratedImage]:
        """Images for ``params``, each with the seed that made it (seed + batch index)."""
        if params.sd_upscale is not None:
            return run_sd_upscale(self, params, progress, cancel)
        if params.inpaint_area == "masked" and params.mask_image is not None:
            self.validate(params)
            return run_masked_area(self, params, progress, cancel)
        canvas = padded_size(params.width, params.height, self.size_multiple)
        if params.latent_resize and latents is None:
            self.validate(params)
            return _cropped(run_latent_resized(self, params, progress, cancel), params)
        if latents is None and params.hires is None and canvas != (params.width, params.height):
            self.validate(params)
            return _cropped(self.generate(pad_params(params, canvas), progress, cancel), params)
        if params.hires is not None:
            result = run_hires(self, params, progress, cancel, latents)
        else:
            result = self.denoise(params, progress, cancel, latents)
        return self.decoded(params, result, cancel, reference(params))

    def decoded(
        self,
        params: GenerationParams,
        result: DenoiseResult,
        cancel: CancelToken | None,
        colours_of: Image.Image | None,
    ) -> list[GeneratedImage]:
        """The denoised latents of ``result`` as images, each with its seed; with
        ``colours_of``, their colours matched to it before any paste-back, as A1111 orders it."""
        if cancel is not None:
            cancel.raise_if_cancelled()
        # The refiner's own VAE decodes its output (as diffusers' refiner pipeline does).
        vae = self.vae_for(params)
        if result.refiner is not None and params.vae_dir is None:
            vae = result.refiner.vae
        fast = self.fast_decoder_for(params) if params.decoder == "fast" else None
        decoded = fast.decode(result.latents) if fast else vae.decode(result.latents)
        if not np.isfinite(decoded).all():
            raise EngineError(
                "the VAE decoded NaN or infinite values (the SDXL VAE overflows in fp16); "
                "use an fp32 VAE or an fp16-fixed one with the vae option"
            )
        images = array_to_images(decoded)
        if colours_of is not None:
            images = [color_corrected(image, colours_of) for image in images]
        if result.plan.finish is not None:
            images = result.plan.finish(images)
        warnings = tuple(result.warnings)
        return [
            GeneratedImage(image=im, seed=s, warnings=warnings)
            for im, s in zip(images, result.seeds, strict=True)
        ]

    def close(self) -> None:
        """Release the sessions; the object cannot generate afterwards."""
        for model in self.models:
            model.close()
        self.adapters.close()
        self.vaes.clear()
        self._refiners.clear()
        self.closed = True


def _cropped(generated: list[GeneratedImage], params: GenerationParams) -> list[GeneratedImage]:
    """Images of a padded canvas cut back to the request's width x height."""
    box = (0, 0, params.width, params.height)
    return [replace(g, image=g.image.crop(box)) for g in generated]


def load_pipeline(
    model_dir: Path,
    choice: ProviderChoice | None = None,
    *,
    scheduler_factory: SchedulerFactory | None = None,
    tile_latent: int = DEFAULT_TILE_LATENT,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    cache_dir: Path | None = None,
) -> StableDiffusion:
    """Open a model folder's sessions on ``choice`` (the best provider found when None).

    ``cache_dir`` keeps ONNX Runtime's optimised copies of the models (see session_cache).
    """
    folder = open_model_folder(Path(model_dir))
    return StableDiffusion(
        folder,
        choice or select_providers(),
        scheduler_factory=scheduler_factory,
        tile_latent=tile_latent,
        tile_overlap=tile_overlap,
        cache_dir=cache_dir,
    )
