"""The one resolution step: a public request plus the chosen model becomes a resolved plan.

Every entry point (native API, A1111, OpenAI; and so the CLI and the web UI) builds a
``GenerateRequest`` and hands it here. The plan has the model's family defaults filled in, the
sampler and schedule resolved to ids, adapters checked and named; it holds no local path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from impasto.engine.families import recommended_cache_interval
from impasto.engine.image_upscale import NONE, target_size
from impasto.engine.noise import resolve_seed
from impasto.engine.sd_upscale import check_covers_a_tile
from impasto.engine.validation import check_refiner
from impasto.formats.fit import fitted
from impasto.formats.pixels import flattened
from impasto.services.errors import FieldError, engine_rules
from impasto.services.hires_plan import FirstPass, resolve_hires
from impasto.services.images import UploadStore
from impasto.services.model_checks import check_against_model
from impasto.services.model_entry import REFINER_FAMILY, ModelEntry
from impasto.services.models import ModelCatalog
from impasto.services.prompt_text import prompt_loras
from impasto.services.sampler_plan import (
    check_image_settings,
    checked_bounds,
    checked_churn,
    checked_discard,
    checked_eta,
    checked_image_steps,
    checked_sgm,
    checked_uncond_skip,
    checked_unipc,
    discards_any,
    hires_sampler_and_schedule,
    latent_source_size,
    runs_negative_pass,
    runs_unipc,
    sampler_and_schedule,
    takes_bound,
    takes_sgm,
)
from impasto.services.upscalers import UpscalerService
from impasto.wire import (
    BOUND_FIELDS,
    UNIPC_FIELDS,
    GenerateRequest,
    ResolvedPlan,
    ResolvedSdUpscale,
)
from impasto.worker.files import (
    NotInstalledError,
    adapter_path,
    check_adapter,
    embeddings_in,
)

MAX_SD_UPSCALE_SIDE = 4096


@dataclass(frozen=True)
class Resolver:
    """Resolves requests against the installed models, adapters and uploads."""

    catalog: ModelCatalog
    uploads: UploadStore
    default_model: str

    def model(self, model_id: str | None) -> ModelEntry:
        """The installed checkpoint a request names (or the default one); FieldError if none."""
        wanted = model_id or self.default_model
        model = self.catalog.get(wanted, broken=True)
        if model is None:
            names = ", ".join(m.id for m in self.catalog.list()) or "none"
            raise FieldError("model", f"model {wanted!r} is not installed; installed: {names}")
        model.check_usable_alone("model")
        return model

    def resolve(self, request: GenerateRequest) -> ResolvedPlan:
        """The plan of ``request``: defaults filled, names checked, images stored as uploads
        (none stays when the request is refused)."""
        with self.uploads.new_uploads():
            return self._resolve(request)

    def _resolve(self, request: GenerateRequest) -> ResolvedPlan:
        model = self.model(request.model)
        defaults = model.defaults
        sampler, schedule = sampler_and_schedule(request, model)
        sdxl = model.family.startswith("sdxl")
        width = request.width or defaults.width
        height = request.height or defaults.height
        if request.sd_upscale is not None:
            # The image keeps its own size: it is upscaled, then cut into tiles of this size.
            init_image: str | None = self._upscale_source(request)
            mask_image, latent_resize = None, False
        else:
            init_image, mask_image, latent_resize = self._images(request, (width, height))
            if request.inpaint_area == "masked" and mask_image is None:
                raise FieldError("inpaint_area", "masked needs a mask_image (and an init_image)")
        check_image_settings(request, init_image, model.inpaint, latent_resize)
        models_dir = self.catalog.models_dir
        prompt, loras = prompt_loras(request)
        for lora, field, tag in loras:
            try:
                path = adapter_path(models_dir, "loras", lora.name)
                check_adapter(path, "loras", lora.name, field)
            except NotInstalledError as exc:
                raise FieldError(field, f"{tag}: {exc.message}" if tag else exc.message) from None
        try:
            if request.vae:
                path = adapter_path(models_dir, "vae", request.vae)
                check_adapter(path, "vae", request.vae, "vae")
        except NotInstalledError as exc:
            raise FieldError(exc.field, exc.message) from None
        if request.refiner:
            self._check_refiner(request.refiner, bool(request.mask_image))
        first = FirstPass(width, height, sampler, schedule, sdxl)
        specs = [lora for lora, _, _ in loras]
        hires = resolve_hires(request, first, self.catalog.models_dir, specs)
        sd_upscale = self._sd_upscale(request, init_image, width, height)
        fast_decoder = self.catalog.fast_decoder_for(model.family)
        if request.decoder == "fast" and fast_decoder is None and not _has_own_taesd(model.path):
            kind = "taesdxl" if model.family.startswith("sdxl") else "taesd"
            raise FieldError(
                "decoder",
                f"fast needs a TAESD decoder for {model.id!r} and none is installed; "
                f"install one with: impasto pull {kind}",
            )
        _check_clip_skip(request.clip_skip, model)
        cache_interval = request.cache_interval
        if cache_interval == -1:
            cache_interval = recommended_cache_interval(model.family)
        text = f"{prompt} {request.negative_prompt}"
        cfg_scale = defaults.cfg_scale if request.cfg_scale is None else request.cfg_scale
        plan = ResolvedPlan(
            prompt=prompt,
            negative_prompt=request.negative_prompt,
            model=model.id,
            family=model.family,
            width=width,
            height=height,
            steps=request.steps or defaults.steps,
            cfg_scale=cfg_scale,
            seed=request.seed,
            # A random variation seed is drawn here, so the plan and the PNG say which it was.
            subseed=resolve_seed(request.subseed) if request.subseed_strength > 0 else -1,
            subseed_strength=request.subseed_strength,
            **_seed_resize(request),
            rng=request.rng,
            noise_seed_delta=request.noise_seed_delta,
            batch_size=request.batch_size,
            sampler=sampler,
            schedule=schedule,
            eta=checked_eta(request.eta, sampler, hires),
            **checked_churn(request, sampler, hires),
            **checked_bounds(request, schedule, hires),
            **checked_uncond_skip(request, cfg_scale, hires, cache_interval),
            discard_penultimate_sigma=checked_discard(
                request.discard_penultimate_sigma, sampler, hires
            ),
            sgm_noise_multiplier=checked_sgm(request.sgm_noise_multiplier, sampler, init_image),
            **checked_unipc(request, sampler, hires),
            priority=request.priority,
            init_image=init_image,
            mask_image=mask_image,
            strength=request.strength,
            noise_multiplier=request.noise_multiplier,
            latent_resize=latent_resize,
            color_correction=request.color_correction,
            color_reference=self._color_reference(request),
            extra_noise=request.extra_noise,
            img2img_steps=request.img2img_steps,
            inpaint_mask_weight=request.inpaint_mask_weight,
            loras=specs,
            embeddings=embeddings_in(models_dir, text),
            vae=request.vae,
            clip_skip=request.clip_skip,
            refiner=request.refiner,
            refiner_switch=request.refiner_switch,
            hires=hires,
            sd_upscale=sd_upscale,
            cache_interval=cache_interval,
            decoder=request.decoder,
            inpaint_area=request.inpaint_area,
            inpaint_padding=request.inpaint_padding,
            masked_content=request.masked_content,
            tiling=request.tiling,
            fast_decoder=fast_decoder,
            plugins=dict(request.plugins),
        )
        checked_image_steps(plan)
        check_against_model(plan, model.path)
        return plan

    def without_unused_settings(self, request: GenerateRequest) -> GenerateRequest:
        """``request`` without the settings that change nothing for it, which A1111 ignores
        where the native API refuses them: schedule bounds none of its schedules (its own, its
        hires pass's) takes, the skipping of a negative prompt's pass where no pass runs one
        (CFG 1 or less), or ``s_min_uncond_all`` without ``s_min_uncond``, the discarding of the
        next-to-last sigma where no sampler has sigmas, extra noise where no pass starts from
        an image, the SGM noise multiplier where the run does not start from pure noise with a
        sampler that walks sigmas, UniPC's order and variant where no sampler is UniPC, and the
        inpainting mask weight where no inpainting model starts from a picture."""
        model = self.model(request.model)
        sampler, schedule = sampler_and_schedule(request, model)
        samplers, schedules = [sampler], [schedule]
        if request.hires is not None:
            sdxl = model.family.startswith("sdxl")
            hires = hires_sampler_and_schedule(request.hires, sampler, schedule, sdxl)
            samplers.append(hires[0] or sampler)
            schedules.append(hires[1])
        unused: dict[str, Any] = {
            name: None for name in BOUND_FIELDS if not takes_bound(schedules, name)
        }
        if not discards_any(samplers):
            unused["discard_penultimate_sigma"] = False
        if not runs_unipc(samplers):
            unused.update(dict.fromkeys(UNIPC_FIELDS))
        starts_from_image = request.init_image is not None or request.sd_upscale is not None
        if not takes_sgm(sampler, starts_from_image):
            unused["sgm_noise_multiplier"] = False  # A1111 scales a txt2img k-diffusion start
        if request.init_image is None:
            unused.update(color_correction=False, color_reference=None)  # img2img's only
        if request.init_image is None and request.hires is None:
            unused["extra_noise"] = 0.0  # A1111 adds it to img2img and the hires pass only
            unused["img2img_steps"] = "strength"  # no pass starts from an image
        if not model.inpaint or "extra_noise" in unused:
            unused["inpaint_mask_weight"] = 1.0  # txt2img conditions on grey
        cfg_scale = model.defaults.cfg_scale if request.cfg_scale is None else request.cfg_scale
        if not runs_negative_pass(cfg_scale, request.hires.cfg_scale if request.hires else None):
            unused.update(s_min_uncond=0.0, skip_early_cond=0.0)
        if not request.s_min_uncond or "s_min_uncond" in unused:
            unused["s_min_uncond_all"] = False
        return msgspec.structs.replace(request, **unused)

    def _images(
        self, request: GenerateRequest, size: tuple[int, int]
    ) -> tuple[str | None, str | None, bool]:
        """The init image and mask as uploads of ``size``, laid out by ``resize_mode``, and
        whether the run resizes the init image's latents instead (``latent`` with an image of
        another size: it keeps its own, down to multiples of 8). With ``inpaint_area`` masked
        and a mask, the init image keeps its own size (only the crop around the mask is
        scaled)."""
        found: dict[str, str | None] = {}
        masked = request.inpaint_area == "masked" and bool(request.mask_image)
        latent = False
        for key, value, mode in (
            ("init_image", request.init_image, "RGB"),
            ("mask_image", request.mask_image, "L"),
        ):
            if not value:
                found[key] = None
                continue
            image = self.uploads.read(value, key)
            # An upload is named as it is; a picture sent inline is stored once, as it runs.
            upload_id = value.removeprefix("upload:") if value.startswith("upload:") else None
            if masked and key == "init_image":
                size = image.size
            target, layout = size, request.resize_mode
            if layout == "latent":
                layout = "stretch"  # the init image to multiples of 8; a mask: as stretch
                if key == "init_image" and image.size != size:
                    target, latent = latent_source_size(image.size), True
            if image.size != target:
                # An init image's transparency is flattened before the resize blends it in.
                image = flattened(image) if key == "init_image" else image.convert(mode)
                try:
                    image = fitted(image, layout, target)
                except ValueError as exc:
                    raise FieldError(key, str(exc)) from None
                upload_id = None  # the laid-out copy runs
            if upload_id is None:
                upload_id, _ = self.uploads.save_image(image)
            found[key] = f"upload:{upload_id}"
        if found["mask_image"] and not found["init_image"]:
            raise FieldError("mask_image", "a mask needs an init_image to paint into")
        return found["init_image"], found["mask_image"], latent

    def _color_reference(self, request: GenerateRequest) -> str | None:
        """The picture ``color_correction`` matches colours to, stored as an upload (None:
        the init image's)."""
        if not request.color_reference:
            return None
        upload_id, _ = self.uploads.resolve(request.color_reference, "color_reference")
        return f"upload:{upload_id}"

    def _upscale_source(self, request: GenerateRequest) -> str:
        """SD upscale's init image, stored at its own size (the tiles are the request's)."""
        if not request.init_image:
            raise FieldError("init_image", "SD upscale needs the image to upscale as init_image")
        if request.mask_image or request.hires is not None or request.batch_size != 1:
            raise FieldError(
                "sd_upscale", "SD upscale makes one image: send it without mask, hires or batch"
            )
        if request.resize_mode != "stretch":
            message = "SD upscale keeps the image's own size: leave it at stretch"
            raise FieldError("resize_mode", message)
        upload_id, _ = self.uploads.resolve(request.init_image, "init_image")
        return f"upload:{upload_id}"

    def _sd_upscale(
        self, request: GenerateRequest, init_image: str | None, width: int, height: int
    ) -> ResolvedSdUpscale | None:
        spec = request.sd_upscale
        if spec is None or init_image is None:
            return None
        service = UpscalerService(self.catalog.models_dir)
        upscaler = service.resolve(spec.upscaler, "sd_upscale.upscaler")
        source = self.uploads.image_size(init_image.removeprefix("upload:"))
        size = source if upscaler == NONE else target_size(source, spec.scale)
        if max(size) > MAX_SD_UPSCALE_SIDE:
            raise FieldError(
                "sd_upscale.scale",
                f"the upscaled image would be {size[0]}x{size[1]}; at most "
                f"{MAX_SD_UPSCALE_SIDE} pixels a side",
            )
        with engine_rules():
            check_covers_a_tile(size, (width, height))
        if spec.overlap >= min(width, height):
            raise FieldError(
                "sd_upscale.overlap", f"must be less than the tile's sides ({width}x{height})"
            )
        return ResolvedSdUpscale(
            scale=spec.scale,
            overlap=spec.overlap,
            upscaler=upscaler,
            width=size[0],
            height=size[1],
        )

    def _check_refiner(self, refiner_id: str, masked: bool) -> None:
        entry = self.catalog.get(refiner_id, broken=True)
        if entry is None:
            raise FieldError("refiner", f"model {refiner_id!r} is not installed")
        if entry.problem:
            raise FieldError("refiner", f"model {refiner_id!r} cannot be used: {entry.problem}")
        if entry.family != REFINER_FAMILY:
            raise FieldError("refiner", f"model {refiner_id!r} is not an SDXL refiner")
        with engine_rules():
            check_refiner(True, masked)


def _seed_resize(request: GenerateRequest) -> dict[str, Any]:
    """A1111's Resize seed from: both sides, or neither (a 422 names the one left out)."""
    sides = {
        "seed_resize_from_width": request.seed_resize_from_width,
        "seed_resize_from_height": request.seed_resize_from_height,
    }
    missing = [name for name, value in sides.items() if not value]
    if len(missing) == 1:
        raise FieldError(missing[0], "set both sides of the seed's size (0 for both: no resize)")
    return sides


def _check_clip_skip(clip_skip: int, model: ModelEntry) -> None:
    """FieldError unless the model's text encoders were exported with the layers to skip."""
    if clip_skip <= model.clip_skip_max:
        return
    if model.clip_skip_max == 1:
        raise FieldError(
            "clip_skip",
            f"must be 1 for {model.id!r}: its text encoder was exported without hidden states "
            "(installing it through Impasto adds them)",
        )
    raise FieldError("clip_skip", f"must be between 1 and {model.clip_skip_max} for {model.id!r}")


def _has_own_taesd(model_dir: Path) -> bool:
    """Whether a model folder carries its own ``taesd_decoder/`` (which the engine prefers)."""
    return (model_dir / "taesd_decoder" / "model.onnx").is_file()
