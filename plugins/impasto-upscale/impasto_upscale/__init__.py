"""Impasto plugin: upscale each output 2x or 4x with an ONNX model, or Lanczos without one."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from impasto.plugins import PluginContext, PostprocessResult, RejectRequest, hookimpl

__version__ = "0.1.0"

SETTINGS = {
    "scale": "Upscale every image by 2 or 4 even when the request does not ask (0 = on request).",
    "model": "ONNX model file (absolute or relative to the models dir); empty: upscalers/*.onnx.",
}
SCALES = (2, 4)

_sessions: dict[Path, Any] = {}
_lock = threading.Lock()


def requested_scale(options: Any, config: dict[str, Any]) -> int:
    """The factor a request's options (or, failing that, the config) asks for; 0 = none."""
    if isinstance(options, dict):
        options = options.get("scale", 0)
    value = options if options not in (None, False) else config.get("scale", 0)
    if value in (0, None, False):
        return 0
    if isinstance(value, bool) or value not in SCALES:
        raise RejectRequest(f"upscale must be 2 or 4, not {value!r}", field="plugins")
    return int(value)


def find_model(context: PluginContext) -> Path | None:
    """The ONNX super-resolution model to use, if one is installed."""
    configured = str(context.config.get("model", "") or "")
    models_dir = context.models_dir
    if configured:
        path = Path(configured)
        if not path.is_absolute() and models_dir is not None:
            path = models_dir / path
        return path if path.is_file() else None
    if models_dir is None:
        return None
    found = sorted((models_dir / "upscalers").glob("*.onnx"))
    return found[0] if found else None


def _session(path: Path) -> Any:
    import onnxruntime as ort

    with _lock:
        if path not in _sessions:
            _sessions[path] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return _sessions[path]


def upscale_onnx(image: Image.Image, model: Path) -> Image.Image:
    """Run the super-resolution model on one RGB image."""
    session = _session(model)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    batch = pixels.transpose(2, 0, 1)[None]
    (out,) = session.run(None, {session.get_inputs()[0].name: batch})
    rgb = np.clip(out[0].transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


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
    if model is not None:
        upscaled = upscale_onnx(image, model)
        if upscaled.size != size:
            upscaled = upscaled.resize(size, Image.Resampling.LANCZOS)
        result.text["upscale"] = f"{scale}x onnx {model.name}"
        return upscaled
    result.text["upscale"] = f"{scale}x lanczos"
    return image.resize(size, Image.Resampling.LANCZOS)
