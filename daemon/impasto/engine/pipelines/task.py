"""Which task a run is, and its plan: a hires pass from latents, txt2img, img2img or inpainting."""

from __future__ import annotations

import numpy as np

from impasto.engine.pipelines.base import TaskPlan
from impasto.engine.pipelines.img2img import noised_start, plan_img2img
from impasto.engine.pipelines.inpaint import conditioned, plan_inpaint, prepare_inputs
from impasto.engine.pipelines.txt2img import plan_txt2img
from impasto.engine.schedulers.base import Scheduler
from impasto.engine.types import GenerationParams
from impasto.engine.vae import Vae


def task_plan(
    params: GenerationParams,
    scheduler: Scheduler,
    vae: Vae,
    noise: np.ndarray,
    inpaint_unet: bool,
    init_latents: np.ndarray | None = None,
) -> TaskPlan:
    """The plan of a run from ``init_latents`` (a hires pass), else from ``params``' images:
    none (txt2img), an init image (img2img) or one with a mask (inpainting). A 9-channel
    ``inpaint_unet`` with no mask gets its extra channels as A1111 conditions it."""
    plan = _plan(params, scheduler, vae, noise, inpaint_unet, init_latents)
    if inpaint_unet and plan.model_input is None:
        plan = conditioned(plan, vae, params, init_latents)
    return plan


def _plan(
    params: GenerationParams,
    scheduler: Scheduler,
    vae: Vae,
    noise: np.ndarray,
    inpaint_unet: bool,
    init_latents: np.ndarray | None,
) -> TaskPlan:
    if init_latents is not None:
        first, index = noised_start(
            scheduler,
            init_latents,
            noise,
            params.steps,
            params.strength,
            params.noise_multiplier,
            params.extra_noise,
            params.img2img_steps,
        )
        return TaskPlan(latents=first, start=index)
    if params.init_image is None:
        return plan_txt2img(scheduler, noise)
    if params.mask_image is None:
        return plan_img2img(
            scheduler,
            vae,
            params.init_image,
            noise,
            params.steps,
            params.strength,
            params.noise_multiplier,
            params.extra_noise,
            params.img2img_steps,
        )
    content = params.masked_content
    inputs = prepare_inputs(
        vae,
        params.init_image,
        params.mask_image,
        len(noise),
        inpaint_unet,
        content,
        params.inpaint_mask_weight,
    )
    return plan_inpaint(
        scheduler,
        inputs,
        params.init_image,
        noise,
        params.steps,
        params.strength,
        overlay=bool(params.extra.get("inpaint_overlay", True)),
        masked_content=content,
        multiplier=params.noise_multiplier,
        extra=params.extra_noise,
        mode=params.img2img_steps,
    )
