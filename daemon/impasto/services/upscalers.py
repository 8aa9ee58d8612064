"""The upscalers every surface offers: None, Lanczos, Nearest and each installed ONNX
super-resolution model (``<models_dir>/upscalers/<name>.onnx``), found by name.

Everything here blocks (file reads, model runs): routes call it in a thread.
"""

from __future__ import annotations

import asyncio
import io
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, PngImagePlugin

from impasto.engine.image_upscale import (
    BUILTIN,
    NONE,
    ModelUpscaler,
    Upscaler,
    UpscalerModelError,
    upscale_image,
)
from impasto.formats.png import PARAMETERS_KEY, exif_user_comment, quote_value
from impasto.services.errors import FieldError, NotFoundError, QueueFullError, ServiceError
from impasto.services.images import image_gone
from impasto.wire import UpscaleRequest
from impasto.worker.files import NotInstalledError, upscaler_models, upscaler_path

if TYPE_CHECKING:
    from impasto.services.container import Services

LABELS = {NONE: "None", "lanczos": "Lanczos", "nearest": "Nearest"}
"""Built-in upscaler id -> AUTOMATIC1111's name."""
MAX_SCALE = 8.0
MAX_SIDE = 8192
MAX_RUNNING = 2
"""Upscales that may run at once in the API process (each holds its source and result, up to
8192 pixels a side, and a model's tiles); one more waits for a slot up to SLOT_WAIT seconds,
then is refused with 429 and Retry-After."""
SLOT_WAIT = 30.0
_SLOT_POLL = 0.05
RETRY_AFTER = 2
_running = threading.BoundedSemaphore(MAX_RUNNING)


def _busy() -> QueueFullError:
    return QueueFullError(
        f"{MAX_RUNNING} upscales are running, the most at once, and none ended within "
        f"{SLOT_WAIT:g} s; try again in a moment",
        retry_after=RETRY_AFTER,
    )


@asynccontextmanager
async def waiting_upscale_slot() -> AsyncIterator[None]:
    """One of the MAX_RUNNING upscale slots for the block, waited for on the event loop (no
    thread is held while it waits) up to SLOT_WAIT seconds, else QueueFullError (429)."""
    deadline = time.monotonic() + SLOT_WAIT
    while not _running.acquire(blocking=False):
        if time.monotonic() >= deadline:
            raise _busy()
        await asyncio.sleep(_SLOT_POLL)
    try:
        yield
    finally:
        _running.release()


class UpscaleCancelled(ServiceError):
    """The upscale was stopped (its client went away) before it ended."""


@dataclass(frozen=True)
class StoppableUpscaler(ModelUpscaler):
    """A model upscaler that stops before its next tile once ``stop`` is set."""

    stop: threading.Event = field(default_factory=threading.Event, compare=False)

    def session(self) -> Any:
        return _StoppableSession(super().session(), self.stop)


class _StoppableSession:
    """An inference session whose next run raises UpscaleCancelled once ``stop`` is set."""

    def __init__(self, session: Any, stop: threading.Event) -> None:
        self._session, self._stop = session, stop

    def run(self, *args: Any, **kwargs: Any) -> Any:
        if self._stop.is_set():
            raise UpscaleCancelled("the upscale was cancelled")
        return self._session.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


@dataclass(frozen=True)
class UpscalerInfo:
    """One upscaler as the listings show it; ``scale`` is a model's own factor."""

    id: str
    label: str
    kind: str  # "none", "resize" or "model"
    scale: float | None = None


@dataclass
class UpscaleSpec:
    """An extras-style upscale: by a factor (mode 0) or to a size (mode 1), with A1111's crop
    and a second upscaler blended in at ``visibility2``."""

    upscaler: str
    scale: float = 2.0
    width: int | None = None
    height: int | None = None
    crop: bool = True
    upscaler2: str = NONE
    visibility2: float = 0.0
    scale_field: str = "scale"
    """The request field an oversized result is blamed on."""
    upscaler_fields: tuple[str, str] = ("upscaler_1", "upscaler_2")
    """The request fields naming ``upscaler`` and ``upscaler2`` (an unusable model is
    blamed on them)."""
    info: dict[str, Any] = field(default_factory=dict)


class UpscalerService:
    """Lists, finds and runs upscalers; stateless apart from the engine's session cache."""

    def __init__(self, models_dir: Path, stop: threading.Event | None = None) -> None:
        self.models_dir = models_dir
        self.stop = stop or threading.Event()
        """Set, a running upscale ends before its next model tile or pass (UpscaleCancelled)."""

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise UpscaleCancelled("the upscale was cancelled")

    def models(self) -> dict[str, Path]:
        return upscaler_models(self.models_dir)

    def available(self) -> list[UpscalerInfo]:
        """Every upscaler: the built-ins, then the installed models with their factors."""
        found = [
            UpscalerInfo(key, LABELS[key], "none" if key == NONE else "resize") for key in BUILTIN
        ]
        for name, path in self.models().items():
            try:
                scale: float | None = float(ModelUpscaler(path).scale)
            except Exception:  # an unreadable model is listed; running it reports the error
                scale = None
            found.append(UpscalerInfo(name, name, "model", scale))
        return found

    def resolve(self, name: str | None, field_name: str = "upscaler") -> str:
        """The id of an upscaler named by its id or A1111 label (any case); FieldError if none."""
        wanted = (name or "").strip()
        for key, label in LABELS.items():
            if wanted.lower() in (key, label.lower()):
                return key
        try:
            return upscaler_path(self.models_dir, wanted, field_name).stem
        except NotInstalledError:
            names = [info.label for info in self.names()]
            raise FieldError(
                field_name,
                f"unknown upscaler {wanted!r}; use one of: {', '.join(names)} "
                "(install ONNX super-resolution models in the models folder's upscalers/)",
            ) from None

    def names(self) -> list[UpscalerInfo]:
        """The upscalers without reading the models (no factors)."""
        builtin = [UpscalerInfo(k, LABELS[k], "none" if k == NONE else "resize") for k in BUILTIN]
        return builtin + [UpscalerInfo(n, n, "model") for n in self.models()]

    def upscaler(self, upscaler_id: str) -> Upscaler:
        """What the engine runs for an id from :meth:`resolve`."""
        if upscaler_id in BUILTIN:
            return upscaler_id
        return StoppableUpscaler(upscaler_path(self.models_dir, upscaler_id), stop=self.stop)

    def label(self, upscaler_id: str) -> str:
        return LABELS.get(upscaler_id, upscaler_id)

    def upscale(self, image: Image.Image, spec: UpscaleSpec) -> Image.Image:
        """A1111's extras upscale of one image; ``spec.info`` gets its "Postprocess" entries."""
        first_field, second_field = spec.upscaler_fields
        first = self.resolve(spec.upscaler, first_field)
        second = self.resolve(spec.upscaler2, second_field)
        if first == NONE:
            return image
        result = self._one(image, first, spec, first_field)
        spec.info["Postprocess upscaler"] = self.label(first)
        if second != NONE and spec.visibility2 > 0:
            other = self._one(image, second, spec, second_field)
            if other.mode != result.mode:
                other = other.convert(result.mode)
            result = Image.blend(result, other, spec.visibility2)
            spec.info["Postprocess upscaler 2"] = self.label(second)
        return result

    def _one(
        self, image: Image.Image, upscaler_id: str, spec: UpscaleSpec, field_name: str
    ) -> Image.Image:
        to_size = spec.width is not None and spec.height is not None
        if to_size:
            assert spec.width is not None and spec.height is not None
            scale = max(spec.width / image.width, spec.height / image.height)
            spec.info["Postprocess upscale to"] = f"{spec.width}x{spec.height}"
        else:
            scale = spec.scale
            spec.info["Postprocess upscale by"] = scale
        check_output_size(image.size, scale, spec.scale_field)
        self.check_stop()
        source = filterable(image)
        upscaler = self.upscaler(upscaler_id)
        try:
            result = upscale_image(source, upscaler, scale)
        except UpscalerModelError as exc:
            if isinstance(exc.__cause__, UpscaleCancelled):
                raise exc.__cause__ from None
            raise FieldError(field_name, str(exc)) from None
        if isinstance(upscaler, ModelUpscaler):
            result = with_source_channels(source, result)
        if to_size and spec.crop:
            assert spec.width is not None and spec.height is not None
            # A1111 pastes the upscaled image centred on a black canvas of the asked size
            # (transparent where the image has an alpha channel).
            canvas = Image.new(result.mode, (spec.width, spec.height))
            canvas.paste(
                result, (spec.width // 2 - result.width // 2, spec.height // 2 - result.height // 2)
            )
            spec.info["Postprocess crop to"] = f"{spec.width}x{spec.height}"
            result = canvas
        return result


def filterable(image: Image.Image) -> Image.Image:
    """``image`` in a mode a resize filters: a palette or 1-bit image (which Pillow resizes
    by its nearest pixel whatever the filter) as RGB, RGBA where it has transparency, or L."""
    if image.mode not in ("P", "PA", "1"):
        return image
    if image.mode == "PA" or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("L" if image.mode == "1" else "RGB")


def with_source_channels(source: Image.Image, result: Image.Image) -> Image.Image:
    """A model's RGB ``result`` with ``source``'s alpha channel (upscaled with Lanczos) and
    greyness put back: a model sees RGB only, and a transparent picture would come back opaque
    where a resize keeps its transparency."""
    grey = source.mode in ("L", "LA")
    if "A" not in source.getbands():
        return result.convert("L") if grey else result
    alpha = source.getchannel("A").resize(result.size, Image.Resampling.LANCZOS)
    out = result.convert("LA" if grey else "RGBA")
    out.putalpha(alpha)
    return out


def check_output_size(size: tuple[int, int], scale: float, field_name: str = "scale") -> None:
    """Refuse an upscale whose result would be larger than MAX_SIDE on a side."""
    if not 0 < scale <= MAX_SCALE:
        raise FieldError(
            field_name, f"upscales by {scale:g}; at most {MAX_SCALE:g}x, lower the factor or size"
        )
    width, height = int(size[0] * scale), int(size[1] * scale)
    if max(width, height) > MAX_SIDE:
        raise FieldError(
            field_name,
            f"the result would be {width}x{height}; at most {MAX_SIDE} pixels a side, "
            "lower the factor or size",
        )


def infotext(info: dict[str, Any]) -> str:
    """A1111's "postprocessing" text: ``key: value`` pairs joined by commas, values quoted."""
    return ", ".join(f"{key}: {quote_value(value)}" for key, value in info.items())


def png_with_info(image: Image.Image, source: Image.Image, info: dict[str, Any]) -> bytes:
    """The PNG of ``image`` keeping ``source``'s text chunks (its generation parameters), with
    A1111's ``postprocessing`` chunk saying what was done."""
    chunks = PngImagePlugin.PngInfo()
    text = {
        key: value
        for key, value in (getattr(source, "text", None) or source.info).items()
        if isinstance(key, str) and isinstance(value, str) and key != "postprocessing"
    }
    # A JPEG or WebP from A1111 keeps its parameters in EXIF's UserComment, as A1111 reads them.
    if PARAMETERS_KEY not in text and (comment := exif_user_comment(source)):
        text = {PARAMETERS_KEY: comment, **text}
    for key, value in text.items():
        chunks.add_text(key, value)
    if info:
        chunks.add_text("postprocessing", infotext(info))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=chunks)
    return buf.getvalue()


OUTPUT_REF = re.compile(r"^(?:/api/v1/images/)?([0-9a-zA-Z_-]+)/(\d+)$")


def source_image(services: Services, ref: str) -> Image.Image:
    """The image a request names: an output (``/api/v1/images/<job>/<index>``), an upload or
    inline base64."""
    match = OUTPUT_REF.match(ref)
    if match is None:  # read, not stored: an upscale makes no job that would name it
        return services.uploads.read(ref, "image", ("an output, /api/v1/images/<job>/<index>",))
    try:
        path = services.jobs.image_path(match.group(1), int(match.group(2)))
    except NotFoundError as exc:
        raise FieldError("image", str(exc)) from None
    try:
        with Image.open(path) as img:
            img.load()
            return img
    except FileNotFoundError:  # deleted since it was found
        gone = image_gone(match.group(1), int(match.group(2)), path.name)
        raise FieldError("image", gone) from None


def upscale_request(
    services: Services, req: UpscaleRequest, stop: threading.Event | None = None
) -> tuple[bytes, str]:
    """The native upscale: the PNG (the source's text chunks kept) and the upscaler's id;
    ``stop`` set ends it early (UpscaleCancelled)."""
    if (req.width is None) != (req.height is None):
        raise FieldError("width", "send both width and height, or neither (to scale by scale)")
    source = source_image(services, req.image)
    upscalers = UpscalerService(services.catalog.models_dir, stop)
    upscaler = upscalers.resolve(req.upscaler)
    spec = UpscaleSpec(
        upscaler=upscaler,
        scale=req.scale,
        width=req.width,
        height=req.height,
        crop=req.crop,
        upscaler_fields=("upscaler", "upscaler"),
    )
    result = upscalers.upscale(source, spec)
    return png_with_info(result, source, spec.info), upscaler
