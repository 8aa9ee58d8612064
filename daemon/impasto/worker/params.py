"""A job's plan as the engine's request: the worker finds and opens every file it names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from impasto.wire import BOUND_FIELDS, CHURN_FIELDS, IMAGE_FIELDS, UNCOND_SKIP_FIELDS
from impasto.worker.protocol import RunJob


def job_model_folder(job: RunJob) -> Path | None:
    """The folder of the job's model: the models folder's, else the bundled one."""
    from impasto.resources import bundled_models_dir
    from impasto.worker.files import Roots, model_folder

    return model_folder(Roots(Path(job.models_dir), bundled_models_dir()), job.plan.model)


def build_params(job: RunJob) -> Any:
    """The engine's request from the job's plan; every file is looked up and opened here."""
    from PIL import Image

    from impasto.engine import AppliedLora, GenerationParams
    from impasto.formats.pixels import flattened
    from impasto.resources import bundled_models_dir
    from impasto.worker.files import Roots, adapter_path, model_folder, upload_path

    plan = job.plan
    models_dir = Path(job.models_dir)
    images: dict[str, Any] = {}
    for key in IMAGE_FIELDS:
        ref = getattr(plan, key)
        if ref:
            path = upload_path(Path(job.uploads_dir), ref)
            if not path.is_file():  # removed by hand, or swept between submit and start
                raise ValueError(f"{key} {ref} is no longer in the uploads folder; send it again")
            with Image.open(path) as img:
                # Pictures are flattened as A1111 flattens them; a mask is its grey levels.
                images[key] = img.convert("L") if key == "mask_image" else flattened(img)
    roots = Roots(models_dir, bundled_models_dir())
    fast_decoder = model_folder(roots, plan.fast_decoder) if plan.fast_decoder else None
    refiner = None
    if plan.refiner:
        refiner = model_folder(roots, plan.refiner)
        if refiner is None:
            raise ValueError(f"refiner {plan.refiner!r} is no longer installed")
    return GenerationParams(
        prompt=plan.prompt,
        negative_prompt=plan.negative_prompt,
        width=plan.width,
        height=plan.height,
        steps=plan.steps,
        cfg_scale=plan.cfg_scale,
        seed=plan.seed,
        subseed=plan.subseed,
        subseed_strength=plan.subseed_strength,
        rng=plan.rng,
        noise_seed_delta=plan.noise_seed_delta,
        seed_resize_from=(plan.seed_resize_from_width, plan.seed_resize_from_height)
        if plan.seed_resize_from_width and plan.seed_resize_from_height
        else None,
        batch_size=plan.batch_size,
        sampler=plan.sampler,
        schedule=plan.schedule,  # type: ignore[arg-type]
        eta=plan.eta,
        **{name: getattr(plan, name) for name in (*CHURN_FIELDS, *BOUND_FIELDS)},
        **{name: getattr(plan, name) for name in UNCOND_SKIP_FIELDS},
        discard_penultimate_sigma=plan.discard_penultimate_sigma,
        sgm_noise_multiplier=plan.sgm_noise_multiplier,
        unipc_order=plan.unipc_order,
        unipc_variant=plan.unipc_variant,
        strength=plan.strength,
        noise_multiplier=plan.noise_multiplier,
        latent_resize=plan.latent_resize,
        color_correction=plan.color_correction,
        extra_noise=plan.extra_noise,
        img2img_steps=plan.img2img_steps,
        inpaint_mask_weight=plan.inpaint_mask_weight,
        preview_every=job.preview_every,
        loras=[
            AppliedLora(adapter_path(models_dir, "loras", x.name), x.weight, x.unet_weight)
            for x in plan.loras
        ],
        embeddings=[models_dir / "embeddings" / f"{name}.safetensors" for name in plan.embeddings],
        vae_dir=adapter_path(models_dir, "vae", plan.vae) if plan.vae else None,
        clip_skip=plan.clip_skip,
        refiner=refiner,
        refiner_switch=plan.refiner_switch,
        hires=_hires(plan.hires, models_dir) if plan.hires else None,
        sd_upscale=_sd_upscale(plan.sd_upscale, models_dir) if plan.sd_upscale else None,
        cache_interval=plan.cache_interval,
        decoder=plan.decoder,
        inpaint_area=plan.inpaint_area,
        inpaint_padding=plan.inpaint_padding,
        masked_content=plan.masked_content,
        tiling=plan.tiling,
        fast_decoder=fast_decoder,
        **images,
    )


def _hires(hires: Any, models_dir: Path) -> Any:
    from impasto.engine.types import HiresParams
    from impasto.worker.files import upscaler_file

    fields = msgspec.structs.asdict(hires)
    return HiresParams(**fields, upscaler_model=upscaler_file(models_dir, hires.upscaler))


def _sd_upscale(spec: Any, models_dir: Path) -> Any:
    from impasto.engine.types import SdUpscaleParams
    from impasto.worker.files import upscaler_file

    model = upscaler_file(models_dir, spec.upscaler)
    return SdUpscaleParams(spec.scale, spec.overlap, spec.upscaler, model)
