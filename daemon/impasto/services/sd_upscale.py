"""AUTOMATIC1111's "SD upscale" script as a native request: its ``script_args`` in A1111's order
(``_`` (an info label), ``overlap``, ``upscaler_index``, ``scale_factor``) become the
``sd_upscale`` field of the img2img ``GenerateRequest`` the script runs on.

The job itself (upscale, img2img per tile, blend) runs in the worker like any generation, so
it is queued, reports progress over every tile and can be cancelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from impasto.services.errors import FieldError
from impasto.services.upscalers import UpscalerService
from impasto.wire import GenerateRequest, SdUpscaleRequest

SCRIPT_NAME = "SD upscale"
ARG_NAMES = ("info", "overlap", "upscaler_index", "scale_factor")
DEFAULTS = (None, 64, 0, 2.0)
"""A1111's UI defaults: overlap 64, the first upscaler (None), scale 2."""


def sd_upscale_request(
    request: GenerateRequest, script_args: list[Any], models_dir: Path
) -> GenerateRequest:
    """``request`` (an img2img request: ``init_image``, tile ``width``/``height``) with the
    script's arguments as its ``sd_upscale``. ``upscaler_index`` indexes A1111's upscaler list
    (``GET /sdapi/v1/upscalers``: None, Lanczos, Nearest, then the installed models); a name is
    accepted too. FieldError names ``script_args`` when an argument is out of range."""
    args = list(script_args) + list(DEFAULTS[len(script_args) :])
    _, overlap, upscaler, scale = args[:4]
    upscalers = UpscalerService(models_dir)
    if isinstance(upscaler, str) and not upscaler.strip().lstrip("-").isdigit():
        upscaler_id = upscalers.resolve(upscaler, "script_args")
    else:
        names = upscalers.names()
        index = _number(upscaler, "upscaler_index", int)
        if not 0 <= index < len(names):
            raise FieldError(
                "script_args",
                f"upscaler_index {index} is out of range: 0..{len(names) - 1} "
                f"({', '.join(n.label for n in names)})",
            )
        upscaler_id = names[index].id
    spec = {
        "overlap": _number(overlap, "overlap", int),
        "upscaler": upscaler_id,
        "scale": _number(scale, "scale_factor", float),
    }
    try:
        checked = msgspec.convert(spec, SdUpscaleRequest)
    except msgspec.ValidationError as exc:
        raise FieldError("script_args", f"SD upscale: {exc}") from None
    return msgspec.structs.replace(request, sd_upscale=checked)


def _number(value: Any, name: str, kind: type) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise FieldError("script_args", f"SD upscale's {name} must be a number") from None
