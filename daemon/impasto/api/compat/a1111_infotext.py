"""AUTOMATIC1111's ``infotext`` request field (1.7+): a picture's parameters text as defaults.

A client pastes the text A1111 writes under a picture (``Steps: 20, Sampler: Euler a, ...``)
and the request takes its settings from it, except for the fields the request sets itself, as
A1111's ``Api.apply_infotext`` does. Labels map to request fields as in A1111's paste fields for
the tab; the values are converted by the request schema's own field types, so a label whose
value does not fit is a 422 naming ``infotext`` and the label.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from impasto.api.compat.a1111_convert import MASKED_CONTENT
from impasto.api.compat.a1111_defaults import A1111_DEFAULT_OPTIONS
from impasto.api.compat.a1111_model_settings import checked_vae
from impasto.api.compat.a1111_schemas import Img2ImgRequest, Txt2ImgRequest
from impasto.api.compat.a1111_settings import (
    CLIP_SKIP_OPTION,
    DISCARD_OPTION,
    ENSD_OPTION,
    EXTRA_NOISE_OPTION,
    IMAGE_STEPS_OPTION,
    MASK_WEIGHT_OPTION,
    NOISE_MULTIPLIER_OPTION,
    SGM_OPTION,
    UNIPC_OPTIONS,
    checked_bound,
    checked_churn,
    checked_clip_skip,
    checked_image_steps,
    checked_noise_seed_delta,
    checked_option,
    checked_unipc,
)
from impasto.api.compat.errors import CompatError, a1111_field
from impasto.api.compat.lenient import lenient_convert
from impasto.formats.png import (
    BOUND_LABELS,
    CHURN_LABELS,
    IMAGE_SIZE,
    IMAGE_STEPS_LABEL,
    UNCOND_SKIP_LABELS,
    UNIPC_LABELS,
    parse_a1111_parameters,
)
from impasto.services.compat import compat_state, resolve_checkpoint
from impasto.services.container import Services
from impasto.services.errors import FieldError

FIELD = "infotext"
AUTO_SWAP_OPTION = "disable_weights_auto_swap"

# The label A1111 writes -> the request field it fills, on both tabs (A1111's paste fields,
# the Seed, Sampler and Refiner scripts' included).
BOTH_TABS = {
    "Prompt": "prompt",
    "Negative prompt": "negative_prompt",
    "CFG scale": "cfg_scale",
    "Size-1": "width",
    "Size-2": "height",
    "Batch size": "batch_size",
    "Denoising strength": "denoising_strength",
    "Seed": "seed",
    "Variation seed": "subseed",
    "Variation seed strength": "subseed_strength",
    "Seed resize from-1": "seed_resize_from_w",
    "Seed resize from-2": "seed_resize_from_h",
    "Steps": "steps",
    "Sampler": "sampler_name",
    "Schedule type": "scheduler",
    "Refiner switch at": "refiner_switch_at",
    "Tiling": "tiling",
}
TXT2IMG = {
    **BOTH_TABS,
    "Hires upscale": "hr_scale",
    "Hires upscaler": "hr_upscaler",
    "Hires steps": "hr_second_pass_steps",
    "Hires resize-1": "hr_resize_x",
    "Hires resize-2": "hr_resize_y",
    "Hires sampler": "hr_sampler_name",
    "Hires schedule type": "hr_scheduler",
    "Hires prompt": "hr_prompt",
    "Hires negative prompt": "hr_negative_prompt",
    "Hires CFG Scale": "hr_cfg",
    "Hires checkpoint": "hr_checkpoint_name",
}
IMG2IMG = {
    **BOTH_TABS,
    "Image CFG scale": "image_cfg_scale",
    "Mask blur": "mask_blur",
    "Mask blur X": "mask_blur_x",  # Impasto's, where the two differ (A1111 writes neither)
    "Mask blur Y": "mask_blur_y",
    "Masked area padding": "inpaint_full_res_padding",
}
HIRES_KEYS = {"Hires upscale", "Hires upscaler", "Hires resize-1"}
"""Any of these with a ``Denoising strength`` turns the hires fix on (A1111's paste fields)."""
# Labels whose text is a choice, read as A1111's radio buttons index it (img2img only).
IMG2IMG_CHOICES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "Mask mode": ("inpainting_mask_invert", lambda text: int(text == "Inpaint not masked")),
    "Masked content": (
        "inpainting_fill",
        lambda text: (
            MASKED_CONTENT.index(key) if (key := text.replace(" ", "_")) in MASKED_CONTENT else text
        ),
    ),
    "Inpaint area": ("inpaint_full_res", lambda text: text == "Only masked"),
}

# What A1111's parse_generation_parameters fills in where a text has no such label, so that
# an inpainting's text (A1111 writes these only where they are not their default) reads back.
IMG2IMG_DEFAULTS = {
    "Mask mode": "Inpaint masked",
    "Masked content": "original",
    "Inpaint area": "Whole picture",
    "Masked area padding": "32",
}


def png_info_parameters(parsed: dict[str, Any]) -> dict[str, Any]:
    """Our parsed ``parameters`` under A1111's png-info keys ("Steps", "Size-1", ...), as text."""
    keys = {
        "steps": "Steps",
        "sampler_name": "Sampler",
        "schedule_type": "Schedule type",
        "cfg_scale": "CFG scale",
        "seed": "Seed",
        "width": "Size-1",
        "height": "Size-2",
        "model": "Model",
    }
    out: dict[str, Any] = {
        "Prompt": parsed.get("prompt", ""),
        "Negative prompt": parsed.get("negative_prompt", ""),
    }
    for ours, theirs in keys.items():
        value = parsed.get(ours)
        if value is None:
            continue
        integral = isinstance(value, float) and value.is_integer()
        out[theirs] = str(int(value)) if integral else str(value)
    for key, value in (parsed.get("extra") or {}).items():
        size = IMAGE_SIZE.match(str(value))
        if size is None:
            out[key] = value
        else:  # A1111 splits every "WxH" value: "Hires resize: 1024x768" -> -1 and -2
            out[f"{key}-1"], out[f"{key}-2"] = size.group(1), size.group(2)
    return out


def infotext_labels(text: str) -> dict[str, Any]:
    """``text`` parsed into A1111's labels ("Steps", "Size-1", ...), as /png-info answers."""
    return png_info_parameters(parse_a1111_parameters(text))


def _checked(schema: type[Txt2ImgRequest], label: str, field: str, value: Any) -> Any:
    """``value`` converted to ``field``'s type by the schema, or a 422 naming the label."""
    try:
        converted = lenient_convert({field: value}, schema)
    except CompatError as exc:
        raise CompatError(422, f"{label}: {value!r}: {exc.message}", FIELD) from None
    return getattr(converted, field)


def _number(label: str, value: Any) -> float:
    """A label's value as a number, or a 422 naming the label."""
    try:
        return float(str(value).strip())
    except ValueError:
        raise CompatError(422, f"{label}: {value!r}: must be a number", FIELD) from None


def _fields(labels: dict[str, Any], is_img2img: bool) -> dict[str, Any]:
    """The request fields ``labels`` give, before the request's own are laid over them."""
    schema = Img2ImgRequest if is_img2img else Txt2ImgRequest
    if is_img2img:
        labels = {**IMG2IMG_DEFAULTS, **labels}
    fields = {
        field: _checked(schema, label, field, labels[label])
        for label, field in (IMG2IMG if is_img2img else TXT2IMG).items()
        if label in labels
    }
    if is_img2img:
        for label, (field, read) in IMG2IMG_CHOICES.items():
            if label in labels:
                fields[field] = _checked(schema, label, field, read(str(labels[label])))
    elif "Denoising strength" in labels and HIRES_KEYS & labels.keys():
        # As A1111's paste turns the hires fix on: a denoising strength and a hires key (an
        # img2img picture's text, sent to txt2img, has the strength alone).
        fields["enable_hr"] = True
    return fields


def _settings(services: Services, labels: dict[str, Any]) -> dict[str, Any]:
    """``override_settings`` entries the text gives: Clip skip, Eta, Eta DDIM, Noise multiplier,
    the sigma churn settings, the schedule's bounds, NGMS and Skip Early CFG, Discard
    penultimate sigma, SGM noise multiplier, UniPC order and variant, Extra noise, Conditional
    mask weight, ENSD, RNG, Img2img steps (Impasto's), the VAE (where installed), the decoder,
    and the model when the ``disable_weights_auto_swap`` option is off (A1111's default keeps
    it)."""
    settings: dict[str, Any] = {}
    if "Clip skip" in labels:
        text = str(labels["Clip skip"])
        if not text.strip().isdigit():
            raise CompatError(422, f"Clip skip: {text!r}: must be a whole number", FIELD)
        settings[CLIP_SKIP_OPTION] = checked_clip_skip(int(text), f"{FIELD} (Clip skip)")
    for label, option in (("Eta", "eta_ancestral"), ("Eta DDIM", "eta_ddim")):
        if label in labels:
            settings[option] = _checked(Txt2ImgRequest, label, "eta", labels[label])
    if "Noise multiplier" in labels:  # read by img2img only, as in A1111
        label, field = "Noise multiplier", "initial_noise_multiplier"
        settings[NOISE_MULTIPLIER_OPTION] = _checked(Img2ImgRequest, label, field, labels[label])
    if "ENSD" in labels:
        text = str(labels["ENSD"]).strip()
        if not text.isdigit():
            raise CompatError(422, f"ENSD: {text!r}: must be a whole number", FIELD)
        settings[ENSD_OPTION] = checked_noise_seed_delta(int(text), f"{FIELD} (ENSD)")
    for name, label in CHURN_LABELS.items():  # A1111's options of the same names
        if label in labels:
            value = _checked(Txt2ImgRequest, label, name, labels[label])
            settings[name] = checked_churn(name, value, f"{FIELD} ({label})")
    for name, label in BOUND_LABELS.items():  # A1111's options of the same names
        if label in labels:
            value = _number(label, labels[label])
            settings[name] = checked_bound(name, value, f"{FIELD} ({label})")
    for name, label in UNCOND_SKIP_LABELS.items():  # A1111's options of the same names
        if label not in labels:
            continue
        if name == "s_min_uncond_all":
            settings[name] = str(labels[label]).strip() == "True"
        else:
            value = _number(label, labels[label])
            settings[name] = checked_option(name, value, f"{FIELD} ({label})")
    for label, option, name in (
        ("Extra noise", EXTRA_NOISE_OPTION, "extra_noise"),
        ("Conditional mask weight", MASK_WEIGHT_OPTION, "inpaint_mask_weight"),
    ):
        if label in labels:
            value = _number(label, labels[label])
            settings[option] = checked_option(name, value, f"{FIELD} ({label})")
    for name, label in UNIPC_LABELS.items():  # A1111's uni_pc_order, uni_pc_variant
        if label in labels:
            text = str(labels[label]).strip()
            given = int(text) if text.isdigit() else text
            settings[UNIPC_OPTIONS[name]] = checked_unipc(name, given, f"{FIELD} ({label})")
    for label, option in (
        ("Discard penultimate sigma", DISCARD_OPTION),
        ("SGM noise multiplier", SGM_OPTION),
    ):
        if label in labels:
            settings[option] = str(labels[label]).strip() == "True"
    if "RNG" in labels:
        settings["randn_source"] = str(labels["RNG"])
    if IMAGE_STEPS_LABEL in labels:  # Impasto's: how a run from an image counted its steps
        text = str(labels[IMAGE_STEPS_LABEL]).strip()
        field = f"{FIELD} ({IMAGE_STEPS_LABEL})"
        settings[IMAGE_STEPS_OPTION] = checked_image_steps(text, field)
    if "VAE" in labels:  # A1111 writes the file's name: "kl-f8-anime2.safetensors"
        with contextlib.suppress(CompatError):  # as A1111: one not installed here is left out
            vae = checked_vae(services, labels["VAE"], FIELD)
            if vae is not None:
                settings["sd_vae"] = vae
    if labels.get("VAE Decoder") in ("Full", "TAESD"):
        settings["sd_vae_decode_method"] = labels["VAE Decoder"]
    options = compat_state(services).options
    if options.get(AUTO_SWAP_OPTION, A1111_DEFAULT_OPTIONS[AUTO_SWAP_OPTION]):
        return settings  # A1111's default: the text does not change the model
    # A1111 swaps by "Model hash"; Impasto's own PNGs name the model (no hash).
    named = [str(labels[key]) for key in ("Model hash", "Model") if key in labels]
    model = next(filter(None, (resolve_checkpoint(services, name) for name in named)), None)
    if model is not None:
        settings["sd_model_checkpoint"] = model
    return settings


def with_infotext(services: Services, body: dict[str, Any], is_img2img: bool) -> dict[str, Any]:
    """``body`` with the fields its ``infotext`` gives, where it does not set them itself.

    Reads the model list for ``Refiner`` and ``Model`` (blocking: call it in a thread).
    """
    text = body.get(FIELD)
    if not text:
        return body
    if not isinstance(text, str):
        raise CompatError(422, "must be the parameters text of a picture", FIELD)
    labels = infotext_labels(text)
    fields = _fields(labels, is_img2img)
    if "Refiner" in labels:
        # As A1111's lookup_checkpoint: a refiner that is not installed is left out.
        refiner = resolve_checkpoint(services, str(labels["Refiner"]))
        if refiner is not None:
            fields["refiner_checkpoint"] = refiner
    merged = {**fields, **body}
    overrides = body.get("override_settings")
    settings = _settings(services, labels)
    if settings and (overrides is None or isinstance(overrides, dict)):
        merged["override_settings"] = {**settings, **(overrides or {})}
    return merged


# The hires pass's size comes from Hires resize, else Hires upscale (its native fields keep
# their names in errors, which explain both).
_SIZE_LABELS = {
    "hires.width": ("Hires resize-1", "Hires upscale"),
    "hires.height": ("Hires resize-2", "Hires upscale"),
}


def _label_of(body: dict[str, Any], field: str, is_img2img: bool) -> tuple[str, str] | None:
    """The label of ``body``'s infotext that gave ``field`` (one the body does not set itself)
    and its text, as the picture's text says it ("Size", "64x80"); None if none did."""
    text = body.get(FIELD)
    sent = a1111_field(field)
    if not isinstance(text, str) or not text or sent in body:
        return None
    labels = infotext_labels(text)
    table = IMG2IMG if is_img2img else TXT2IMG
    named = [label for label, request_field in table.items() if request_field == sent]
    for label in (*named, *_SIZE_LABELS.get(field, ())):
        if label not in labels:
            continue
        if label[-2:] in ("-1", "-2"):  # a "WxH" value, split by the reader
            base = label[:-2]
            return base, f"{labels[base + '-1']}x{labels[base + '-2']}"
        return label, str(labels[label])
    return None


@contextlib.contextmanager
def blaming_infotext(body: dict[str, Any], is_img2img: bool) -> Iterator[None]:
    """A 422 on a request field that the body's infotext filled names ``infotext`` and the
    label instead (``infotext: Steps: '0': must be ...``): the client sent no such field."""
    try:
        yield
    except (CompatError, FieldError) as exc:
        status = exc.status if isinstance(exc, CompatError) else 422
        found = _label_of(body, exc.field, is_img2img) if status == 422 and exc.field else None
        if found is None:
            raise
        label, text = found
        raise CompatError(422, f"{label}: {text!r}: {exc.message}", FIELD) from None
