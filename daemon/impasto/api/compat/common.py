"""What both compatible APIs need: LoRA tags, request checks, image decoding and uploads."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec
from PIL import Image

from impasto.services.container import Services
from impasto.services.errors import FieldError
from impasto.services.images import decode_image
from impasto.wire import GenerateRequest, convert_allowing_empty_prompt, decode_error


def checked_request(fields: dict[str, Any]) -> GenerateRequest:
    """``fields`` as a native GenerateRequest, checked against its rules (None = model default);
    the compatible APIs accept an empty prompt, which the native schema refuses."""
    candidate = {k: v for k, v in fields.items() if v is not None}
    try:
        return convert_allowing_empty_prompt(candidate, GenerateRequest)
    except msgspec.ValidationError as exc:
        raise FieldError(*decode_error(str(exc), schema=GenerateRequest)) from None


_WHITESPACE = str.maketrans("", "", " \t\r\n")


def decode_base64(value: str) -> bytes:
    """The bytes of a base64 string or data URL, as A1111 reads them: line breaks and spaces
    (MIME base64 wraps its lines, as Python's ``encodebytes`` and Java's MIME encoder do) and
    left-out padding are accepted; any other character outside the alphabet is not.
    Raises ValueError."""
    raw = value.split(",", 1)[1] if value.startswith("data:") else value
    raw = raw.translate(_WHITESPACE)
    try:
        return base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


def decode_base64_image(services: Services, value: str, field: str) -> Image.Image:
    """A base64 string or data URL as a decoded PNG, JPEG or WebP image."""
    try:
        data = decode_base64(value)
    except ValueError:
        raise FieldError(field, "must be a base64 encoded image or a data: URL") from None
    return decode_image(data, field, services.uploads.max_bytes)


def upload(services: Services, image: Image.Image) -> str:
    """Store an image as an upload and return the ``upload:<id>`` a request can name."""
    upload_id, _ = services.uploads.save_image(image)
    return f"upload:{upload_id}"
