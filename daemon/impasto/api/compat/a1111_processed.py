"""A1111's ``info``: the JSON text of ``Processed.js()`` that its clients parse."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from impasto.api.compat.a1111_convert import Plan, mask_blurs
from impasto.api.compat.a1111_schemas import Img2ImgRequest, Txt2ImgRequest
from impasto.api.compat.samplers_map import sampler_label, schedule_label
from impasto.engine.noise import offset_seed
from impasto.formats.png import PARAMETERS_KEY, parse_a1111_parameters, with_labels
from impasto.formats.png_text import with_text
from impasto.services.compat import ResultImage
from impasto.services.container import Services
from impasto.wire import ResolvedPlan

# Infotext keys A1111 writes from its own fields, not from ``extra_generation_params``.
_OWN_KEYS = frozenset(
    {
        "Variation seed",
        "Variation seed strength",
        "Seed resize from",
        "Denoising strength",
        "Clip skip",
        "RNG",
        "Tiling",
        "Model hash",
        "VAE",
        "VAE hash",
        "Version",
    }
)


def _extra_params(infotext: str) -> dict[str, Any]:
    """The first picture's extra settings (hires fix, refiner, eta, ...) as A1111 lists them
    in ``extra_generation_params``: numbers as numbers, flags (``Discard penultimate sigma:
    True``) as booleans; a prompt's text stays text."""
    extra: dict[str, Any] = {}
    for key, text in parse_a1111_parameters(infotext)["extra"].items():
        if key in _OWN_KEYS:
            continue
        if text in ("True", "False") and not key.lower().endswith("prompt"):
            extra[key] = text == "True"
            continue
        for kind in (int, float):
            try:
                extra[key] = kind(text)
                break
            except ValueError:
                continue
        else:
            extra[key] = text
    return extra


def request_labels(req: Txt2ImgRequest, plan: Plan) -> dict[str, Any]:
    """The labels A1111 writes for what this layer applies before the job (the inpainting
    mask's blur and inversion), which the job that draws the picture does not know: ``Mask
    blur`` (``Mask blur X`` and ``Y`` where they differ, which A1111 leaves out) and ``Mask
    mode``."""
    if not plan.inpaint or not isinstance(req, Img2ImgRequest):
        return {}
    blur_x, blur_y = mask_blurs(req)
    labels: dict[str, Any] = (
        {"Mask blur": blur_x}
        if blur_x == blur_y
        else {"Mask blur X": blur_x, "Mask blur Y": blur_y}
    )
    if req.inpainting_mask_invert:
        labels["Mask mode"] = "Inpaint not masked"
    return labels


def labelled(images: list[ResultImage], labels: dict[str, Any]) -> list[ResultImage]:
    """``images`` with ``labels`` added to their ``parameters`` text, in the PNG too, so that
    the text pasted back (A1111's "send to img2img") redraws them (file work: in a thread)."""
    if not labels:
        return images
    out = []
    for image in images:
        text = with_labels(image.infotext, labels)
        png = with_text(image.png, PARAMETERS_KEY, text)
        out.append(dataclasses.replace(image, png=png, infotext=text))
    return out


def info_json(
    services: Services,
    req: Txt2ImgRequest,
    plan: Plan,
    images: list[ResultImage],
    first: ResolvedPlan,
) -> str:
    """The ``info`` JSON text A1111 clients parse (Processed.js() in A1111).

    ``first`` is the resolved plan of the first job: the values that ran, defaults included.
    """
    seeds = [image.seed for image in images] or [first.seed]
    count = max(len(images), 1)
    # The variation seeds that ran (image i: subseed + i), else what the request said.
    subseed = first.subseed if first.subseed_strength else req.subseed
    subseed = -1 if subseed is None else subseed
    subseeds = [
        offset_seed(subseed, i) if first.subseed_strength else subseed for i in range(count)
    ]
    model = services.catalog.get(plan.model)
    extra: dict[str, Any] = {"Schedule type": schedule_label(first.schedule)}
    if images and images[0].infotext:
        extra.update(_extra_params(images[0].infotext))
    extra.update(request_labels(req, plan))
    # Each image's prompts as they ran, styles applied (its infotext's), as A1111's all_prompts;
    # prompt and negative_prompt stay as sent.
    ran = [parse_a1111_parameters(image.infotext) for image in images if image.infotext]
    all_prompts = [r["prompt"] for r in ran] if ran else [plan.prompt] * count
    all_negative = [r["negative_prompt"] for r in ran] if ran else [plan.negative_prompt] * count
    info = {
        "prompt": plan.prompt,
        "all_prompts": all_prompts,
        "negative_prompt": plan.negative_prompt,
        "all_negative_prompts": all_negative,
        "seed": seeds[0],
        "all_seeds": seeds,
        "subseed": subseeds[0],
        "all_subseeds": subseeds,
        "subseed_strength": first.subseed_strength,
        "width": first.width,
        "height": first.height,
        "sampler_name": sampler_label(first.sampler),
        "cfg_scale": first.cfg_scale,
        "steps": first.steps,
        "batch_size": first.batch_size,
        "restore_faces": False,
        "face_restoration_model": None,
        "sd_model_name": plan.model,
        # A1111's short hash: the sha256's first 10 digits, where the install has one.
        "sd_model_hash": model.hash[:10] if model is not None and model.hash else None,
        # The VAE swapped in (override_settings.sd_vae or the option); None: the checkpoint's.
        "sd_vae_name": first.vae,
        "sd_vae_hash": None,
        "seed_resize_from_w": req.seed_resize_from_w if req.seed_resize_from_w is not None else -1,
        "seed_resize_from_h": req.seed_resize_from_h if req.seed_resize_from_h is not None else -1,
        "denoising_strength": plan.strength,
        "extra_generation_params": extra,
        "index_of_first_image": 0,
        "infotexts": [image.infotext for image in images],
        "styles": req.styles or [],
        "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
        "clip_skip": first.clip_skip,
        # A1111's: any run on an inpainting model (txt2img conditions it on a grey picture).
        "is_using_inpainting_conditioning": bool(model and model.inpaint),
        "version": f"impasto {services.version}",
    }
    return json.dumps(info, ensure_ascii=False)
