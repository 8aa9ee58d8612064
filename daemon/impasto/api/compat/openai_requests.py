"""The OpenAI routes' requests as Impasto's: the model a name means, the output size, the
checks OpenAI's fields need, multipart forms, and the uploads of an edit or a variation."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar.datastructures import UploadFile
from PIL import Image

from impasto.api.bodies import read_file_part
from impasto.api.compat.common import checked_request, upload
from impasto.api.compat.errors import CompatError
from impasto.api.compat.openai_schemas import ImageGenerationRequest
from impasto.api.compat.samplers_map import UnknownSamplerError, sampler_from_name
from impasto.formats.pixels import flattened
from impasto.services import compat
from impasto.services.container import Services
from impasto.services.errors import FieldError
from impasto.services.images import decode_image
from impasto.wire import GenerateRequest, convert_allowing_empty_prompt, decode_error

# How far a variation may move from its image (the img2img strength; ``strength`` overrides it).
VARIATION_STRENGTH = 0.6


# OpenAI's own image models (dall-e-2, dall-e-3, gpt-image-1, gpt-image-1-mini, ...): clients
# send them by default, and tools hard-code them, so they mean "the current model".
OPENAI_MODEL_PREFIXES = ("dall-e", "gpt-image", "chatgpt-image")


def _model(services: Services, name: str | None) -> Any:
    """The installed model ``name`` names; OpenAI's names, or none, mean the current one."""
    if not name or name.strip().lower().startswith(OPENAI_MODEL_PREFIXES):
        current = compat.current_checkpoint(services)
        model = services.catalog.get(current)
        if model is None and compat.compat_state(services).checkpoint == current:
            # Set through A1111's /options and removed since: not a picture from another model.
            installed = ", ".join(m.id for m in services.catalog.list()) or "none"
            message = (
                f"the current model {current!r} (set through /sdapi/v1/options) is not "
                f"installed any more; send model, one of: {installed}"
            )
            raise CompatError(400, message, "model")
        return model
    model_id = compat.resolve_checkpoint(services, name)
    if model_id is None:
        # Not a picture from another model than the one asked for (a typo, a removed model).
        installed = ", ".join(m.id for m in services.catalog.list()) or "none"
        message = (
            f"model {name!r} is not installed; installed: {installed} (OpenAI's names, such "
            "as dall-e-3 or gpt-image-1, mean the current model)"
        )
        raise CompatError(400, message, "model")
    return services.catalog.get(model_id)


def _size(value: str | None) -> tuple[int, int] | None:
    """WIDTHxHEIGHT as numbers; None ("auto" or left out) takes the model's default size."""
    if not value or value == "auto":
        return None
    width, _, height = value.lower().partition("x")
    if not (width.isdigit() and height.isdigit()):
        raise CompatError(400, f"size {value!r} must be WIDTHxHEIGHT, e.g. 512x512", "size")
    return int(width), int(height)


def _output_size(req: ImageGenerationRequest, image: Image.Image) -> tuple[int, int]:
    """An edit's or variation's size: ``size``, else the image's own (down to a multiple of 8)."""
    return _size(req.size) or (image.width // 8 * 8, image.height // 8 * 8)


def _request_size(fields: GenerateRequest) -> tuple[int, int]:
    """The output size an edit's or variation's request settled (``_output_size``'s)."""
    assert fields.width is not None and fields.height is not None  # an image gives one
    return fields.width, fields.height


def _check(req: ImageGenerationRequest, *, variation: bool = False) -> None:
    """What the body's types cannot say (they hold each field's own values and range)."""
    if not variation and not req.prompt.strip():
        raise CompatError(400, "prompt must not be empty", "prompt")
    if req.response_format == "url" and (req.output_format or "png") != "png":
        raise CompatError(
            400, "a url is the stored PNG; ask b64_json for jpeg or webp", "output_format"
        )
    if req.stream and variation:
        raise CompatError(400, "a variation does not stream; send stream false", "stream")
    if req.stream and req.response_format == "url":
        raise CompatError(
            400, "a stream carries b64_json; leave response_format out", "response_format"
        )


def impasto_request(
    services: Services,
    req: ImageGenerationRequest,
    image: Image.Image | None = None,
    *,
    variation: bool = False,
) -> GenerateRequest:
    """The native request of ``req``; an edit or variation passes its ``image``, whose size is
    the output's unless ``size`` is sent (a variation needs no prompt and does not stream)."""
    _check(req, variation=variation)
    model = _model(services, req.model)
    size = _output_size(req, image) if image is not None else _size(req.size)
    width, height = size or (None, None)
    sampler, schedule = None, None
    if req.sampler:
        try:
            # As in the native API: the model's schedule, unless a legacy name carries one.
            sampler, schedule = sampler_from_name(req.sampler)
        except UnknownSamplerError as exc:
            raise CompatError(400, str(exc), "sampler") from None
    # Fields left None take the model's defaults in the resolution step.
    fields = {
        "prompt": req.prompt,  # its <lora:...> tags are read in the resolution step
        "negative_prompt": req.negative_prompt or "",
        "model": model.id if model else None,
        "width": width,
        "height": height,
        "steps": req.steps,
        "cfg_scale": req.cfg_scale,
        "seed": req.seed if req.seed is not None else -1,
        "batch_size": req.n or 1,
        "sampler": sampler,
        "schedule": schedule,
        "strength": req.strength,
    }
    try:
        return checked_request(fields)
    except FieldError as exc:
        if exc.field not in ("width", "height"):
            raise
        # The width and height came from ``size`` or, without it, the image: that is the
        # parameter to fix.
        if _size(req.size) is not None or image is None:
            message = f"size {req.size!r}: the {exc.field} {exc.message}"
            raise CompatError(400, message, "size") from None
        message = (
            f"image is {image.width}x{image.height}, the output size when size is not sent: "
            f"the {exc.field} {exc.message}; send size"
        )
        raise CompatError(400, message, "image") from None


def _file(value: Any, field: str) -> UploadFile | None:
    if isinstance(value, list):
        if len(value) > 1:
            # gpt-image models combine several images into one; this engine edits one.
            message = f"{len(value)} images sent; Impasto edits one image: send one {field}"
            raise CompatError(400, message, field)
        value = value[0] if value else None
    return value if isinstance(value, UploadFile) else None


async def read_image(services: Services, value: Any, field: str) -> Image.Image:
    file = _file(value, field)
    if file is None:
        raise CompatError(400, f"send {field} as a file in multipart/form-data", field)
    content = await read_file_part(file, services.uploads.max_bytes, field)
    return await asyncio.to_thread(decode_image, content, field, services.uploads.max_bytes)


def _repaint_mask(image: Image.Image, field: str) -> Image.Image:
    """OpenAI marks the area to edit transparent; Impasto paints where the mask is white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode not in ("RGBA", "LA", "PA"):
        raise CompatError(
            400, f"{field} must be a PNG with transparency marking the area to edit", field
        )
    alpha = image.getchannel("A")
    return alpha.point(lambda value: 255 if value < 128 else 0, mode="L")


def form_request(form: dict[str, Any], *, variation: bool = False) -> ImageGenerationRequest:
    """Multipart fields are text: read them as the JSON body's types and limits read them."""
    values: dict[str, Any] = {}
    for key in ImageGenerationRequest.__struct_fields__:
        raw = form.get(key)
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if isinstance(raw, str) and raw != "":
            values[key] = raw
    if not variation and "prompt" not in values:
        raise CompatError(400, "prompt is required", "prompt")
    try:
        # Lax mode reads numbers and true/false from text; the schema's limits still apply. A
        # variation needs no prompt (images.create_variation has none).
        return convert_allowing_empty_prompt(values, ImageGenerationRequest, strict=False)
    except msgspec.ValidationError as exc:
        field, rule = decode_error(str(exc), schema=ImageGenerationRequest)
        raise CompatError(400, f"{field}: {rule}", field) from None


def edit_request(
    services: Services,
    req: ImageGenerationRequest,
    image: Image.Image,
    mask_image: Image.Image | None,
) -> GenerateRequest:
    """An inpainting request: the image and the mask (its transparent area) stored as uploads.

    Resizing and storing images is blocking work: call in a thread.
    """
    mask = None
    if mask_image is not None:
        if mask_image.size != image.size:  # as OpenAI refuses it
            message = (
                f"the mask ({mask_image.width}x{mask_image.height}) and the image "
                f"({image.width}x{image.height}) must have the same dimensions"
            )
            raise CompatError(400, message, "mask")
        mask = _repaint_mask(mask_image, "mask")
    elif "A" in image.getbands():
        mask = _repaint_mask(image, "image")
    if req.strength is None and mask is not None:
        # The transparent area is to be painted anew, not varied.
        req.strength = 1.0
    fields = impasto_request(services, req, image)
    size = _request_size(fields)
    images = {"init_image": upload(services, flattened(image).resize(size))}
    if mask is not None:
        images["mask_image"] = upload(services, mask.resize(size))
    return msgspec.structs.replace(fields, **images)


def variation_request(
    services: Services, req: ImageGenerationRequest, image: Image.Image
) -> GenerateRequest:
    """An img2img of ``image`` at VARIATION_STRENGTH unless ``strength`` says otherwise
    (blocking: call in a thread)."""
    if req.strength is None:
        req.strength = VARIATION_STRENGTH
    fields = impasto_request(services, req, image, variation=True)
    size = _request_size(fields)
    init = upload(services, flattened(image).resize(size))
    return msgspec.structs.replace(fields, init_image=init)
