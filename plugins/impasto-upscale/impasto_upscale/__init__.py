"""Impasto plugin: upscale each output 2x or 4x with an ONNX model, or Lanczos without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec
from PIL import Image

from impasto.engine.image_upscale import ModelUpscaler, Upscaler, upscale_image
from impasto.plugins import PluginContext, PostprocessResult, RejectRequest, hookimpl

__version__ = "0.1.0"

SETTINGS = {
    "scale": "Upscale every image by 2 or 4 even when the request does not ask (0 = on request).",
    "model": "ONNX model file (absolute or relative to the models dir) or an installed upscaler's "
    "name; empty: the first upscalers/*.onnx.",
}
SCALES = (2, 4)
Scale = Literal[0, 2, 4]  # 0: none
FIELD = "plugins.upscale"  # the request field a refusal names: this plugin's options


class ScaleOptions(msgspec.Struct, forbid_unknown_fields=True):
    """``{"scale": 2}``, the long form of the options."""

    scale: Scale = 0


# What the request's options may be (the plugin host refuses anything else with a 422, before
# any hook runs, and also where another plugin's preprocessor put them): 2 or 4, false or 0 for
# none, or {"scale": 2}.
OPTIONS = Scale | bool | ScaleOptions | None


def requested_scale(options: Any, config: dict[str, Any]) -> int:
    """The factor a request's options (or, failing that, the config) asks for; 0 = none."""
    if isinstance(options, dict):
        options = options.get("scale", 0)
    value = options if options not in (None, False) else config.get("scale", 0)
    if value in (0, None, False):
        return 0
    if isinstance(value, bool) or value not in SCALES:
        raise RejectRequest(f"upscale must be 2 or 4, not {value!r}", field=FIELD)
    return int(value)


def find_model(context: PluginContext) -> Path | None:
    """The ONNX super-resolution model to use, if one is installed."""
    configured = str(context.config.get("model", "") or "")
    models_dir = context.models_dir
    if configured:
        path = Path(configured)
        if not path.is_absolute() and models_dir is not None:
            # A file under the models dir, or an installed upscaler's name (upscalers/NAME.onnx).
            named = models_dir / "upscalers" / f"{configured}.onnx"
            path = models_dir / path if (models_dir / path).is_file() else named
        return path if path.is_file() else None
    if models_dir is None:
        return None
    found = sorted((models_dir / "upscalers").glob("*.onnx"))
    return found[0] if found else None


def upscale_onnx(image: Image.Image, model: Path) -> Image.Image:
    """One pass of the super-resolution model over an RGB image (Impasto's engine runs it)."""
    return ModelUpscaler(model).run(image)


@hookimpl
def preprocess_request(request: dict[str, Any], context: PluginContext) -> None:
    """Refuse a bad factor at submit time rather than failing the job later."""
    requested_scale(context.options, context.config)


@hookimpl(tryfirst=True)
def postprocess_result(
    result: PostprocessResult, image: Image.Image, context: PluginContext
) -> Image.Image | None:
    """Upscale before other post-processors (watermarks) see the image."""
    scale = requested_scale(context.options, context.config)
    if not scale:
        return None
    size = (image.width * scale, image.height * scale)
    model = find_model(context)
    # The engine's upscaler, as everywhere in Impasto: a model runs until the image is at
    # least the size asked for (a 2x model twice for 4x), then Lanczos to the exact size.
    upscaler: Upscaler = ModelUpscaler(model) if model is not None else "lanczos"
    result.text["upscale"] = f"{scale}x onnx {model.name}" if model else f"{scale}x lanczos"
    return upscale_image(image, upscaler, scale, size)
