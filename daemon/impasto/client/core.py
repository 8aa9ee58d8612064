"""The I/O-free half of the client: build requests, parse responses, track event streams."""

from __future__ import annotations

import io
import math
import mimetypes
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from impasto.client.errors import (
    ApiError,
    DaemonNotRunning,
    FieldError,
    ImpastoError,
    UnsendableRequest,
)
from impasto.client.types import (
    Health,
    HistoryPage,
    JobStatus,
    ModelInfo,
    QueueState,
    SamplerInfo,
    Submitted,
    SystemInfo,
    UploadedImage,
    UpscalerEntry,
)

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

T = TypeVar("T")
API = "/api/v1"
CONNECT_TIMEOUT = 5.0  # seconds to connect, whatever the call
UPSCALE_TIMEOUT = 3600.0  # seconds an upscale's answer may take (a model on a CPU)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API call: what to send and how to turn the answer into a typed result."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: dict[str, str | int] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes, str]] | None = None
    # Seconds to wait for an answer that comes once the work is done (an upscale), where
    # the client's timeout (30 s by default) is for answers that come at once.
    read_timeout: float | None = None

    def request(
        self, client: httpx.Client | httpx.AsyncClient, timeout: httpx.Timeout | None = None
    ) -> httpx.Request:
        """Build the httpx request on ``client`` (its base URL and auth header apply)."""
        headers = dict(self.headers)
        content = None
        if self.body is not None:
            check_finite(self.body)
            content = msgspec.json.encode(self.body)
            headers["Content-Type"] = "application/json"
        if timeout is None and self.read_timeout is not None:
            timeout = httpx.Timeout(self.read_timeout, connect=CONNECT_TIMEOUT)
        return client.build_request(
            self.method,
            API + self.path,
            params=self.params or None,
            content=content,
            headers=headers,
            files=self.files,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )


def api_path(*segments: str | int) -> str:
    """A path under /api/v1 from its segments, each percent-encoded whole: an id holding ``?``
    or ``#``, or one that is ``.`` or ``..``, stays one segment instead of adding a query or
    walking to another path (``model?force=true`` must not send ``force=true``). An empty id,
    or one holding ``/``, raises ImpastoError: no path could carry it to its route."""
    return "".join("/" + _segment(str(segment)) for segment in segments)


def _segment(text: str) -> str:
    if not text:
        raise ImpastoError("an empty id names nothing: give the id")
    if "/" in text:
        # No id holds one, and the daemon decodes %2F before it routes: DELETE
        # /models/installs%2FID would reach DELETE /models/installs/ID.
        raise ImpastoError(f"{text!r} is not an id: ids hold no '/'")
    if text in (".", ".."):  # httpx (as browsers) drops or resolves a literal dot segment
        return text.replace(".", "%2E")
    return quote(text, safe="")


NOT_FINITE = "must be a finite number (NaN and infinity have no JSON form)"


def not_finite(value: Any, where: str = "") -> list[str]:
    """Where ``value`` (JSON-shaped) holds a NaN or an infinity: ``.cfg_scale``, ``[0]``."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [where]
    if isinstance(value, dict):
        return [f for key, item in value.items() for f in not_finite(item, f"{where}.{key}")]
    if isinstance(value, list | tuple):
        return [f for i, item in enumerate(value) for f in not_finite(item, f"{where}[{i}]")]
    return []


def check_finite(body: Any) -> None:
    """Raise UnsendableRequest naming every NaN or infinite number in ``body``: msgspec (as
    most JSON encoders) writes them as ``null``, which the daemon reads as "the default"."""
    fields = not_finite(msgspec.to_builtins(body))
    if fields:
        raise UnsendableRequest([FieldError(f.lstrip("."), NOT_FINITE) for f in fields])


class _ErrorBody(msgspec.Struct):
    detail: str = ""
    errors: list[FieldError] = msgspec.field(default_factory=list)


def raise_for_status(response: httpx.Response) -> None:
    """Raise ApiError for a 4xx/5xx answer (the body must have been read)."""
    if response.status_code < 400:
        return
    try:
        body = msgspec.json.decode(response.content, type=_ErrorBody)
        detail, errors = body.detail, body.errors
    except msgspec.MsgspecError:
        detail, errors = _foreign_answer(response), []
    retry_after = response.headers.get("Retry-After")
    raise ApiError(
        response.status_code,
        detail or response.reason_phrase or "request failed",
        errors,
        retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
    )


def _foreign_answer(response: httpx.Response) -> str:
    """The detail of an error answer that is not the daemon's JSON: another program on that
    port (a web server's HTML page), or a proxy. Its page is not the message: say whose it is."""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0].strip()
    json_kind = kind == "application/json" or kind.endswith("+json")
    if json_kind or (kind == "text/plain" and len(response.text) <= 200):  # its own words
        return response.text.strip()
    url = response.request.url
    return (
        f"{url.scheme}://{url.netloc.decode()} answered {response.status_code} "
        f"{response.reason_phrase} with {kind}, not as Impasto answers: is it Impasto's "
        "address? (--url, IMPASTO_URL)"
    )


def transport_error(exc: httpx.TransportError, where: str) -> ImpastoError:
    """The client error for a failed connection: DaemonNotRunning when nothing listens."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DaemonNotRunning(f"nothing answers at {where}")
    if isinstance(exc, httpx.TimeoutException):
        return ImpastoError(f"the daemon at {where} did not answer in time")
    return ImpastoError(f"the connection to the daemon at {where} failed: {exc}")


def history_status(status: str | Sequence[str] | None) -> str | None:
    """The ``status`` filter of /history as the comma-separated list it expects."""
    if status is None or isinstance(status, str):
        return status
    return ",".join(status)


def _decoder(kind: type[T]) -> Callable[[httpx.Response], T]:
    def parse(response: httpx.Response) -> T:
        try:
            return msgspec.json.decode(response.content, type=kind)
        except msgspec.MsgspecError as exc:
            raise ImpastoError(f"unexpected answer from the daemon: {exc}") from None

    return parse


class _SubmitBody(msgspec.Struct):
    id: str
    position: int | None = 0


class _PausedBody(msgspec.Struct):
    paused: bool


class _ClearedBody(msgspec.Struct):
    cancelled: list[str]


def _submitted(response: httpx.Response) -> Submitted:
    body = _decoder(_SubmitBody)(response)
    return Submitted(body.id, body.position)


def _paused(response: httpx.Response) -> bool:
    return _decoder(_PausedBody)(response).paused


def health() -> Call[Health]:
    """GET /health."""
    return Call("GET", "/health", _decoder(Health))


def system() -> Call[SystemInfo]:
    """GET /system."""
    return Call("GET", "/system", _decoder(SystemInfo))


def models() -> Call[list[ModelInfo]]:
    """GET /models."""
    return Call("GET", "/models", _decoder(list[ModelInfo]))


def samplers() -> Call[list[SamplerInfo]]:
    """GET /samplers."""
    return Call("GET", "/samplers", _decoder(list[SamplerInfo]))


def submit(
    request: Mapping[str, Any] | None, fields: Mapping[str, Any], idempotency_key: str | None
) -> Call[Submitted]:
    """POST /generate; keyword fields override the request dict's."""
    body = {**(request or {}), **fields}
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", "/generate", _submitted, body=body, headers=headers)


def status(job_id: str) -> Call[JobStatus]:
    """GET /generate/{id}."""
    return Call("GET", api_path("generate", job_id), _decoder(JobStatus))


def cancel(job_id: str) -> Call[JobStatus]:
    """POST /generate/{id}/cancel."""
    return Call("POST", api_path("generate", job_id, "cancel"), _decoder(JobStatus))


def set_priority(job_id: str, priority: int) -> Call[JobStatus]:
    """PATCH /generate/{id}."""
    return Call(
        "PATCH", api_path("generate", job_id), _decoder(JobStatus), body={"priority": priority}
    )


def delete(job_id: str) -> Call[None]:
    """DELETE /generate/{id}."""
    return Call("DELETE", api_path("generate", job_id), lambda _response: None)


def queue() -> Call[QueueState]:
    """GET /queue."""
    return Call("GET", "/queue", _decoder(QueueState))


def pause() -> Call[bool]:
    """POST /queue/pause."""
    return Call("POST", "/queue/pause", _paused)


def resume() -> Call[bool]:
    """POST /queue/resume."""
    return Call("POST", "/queue/resume", _paused)


def clear_queue(running: bool) -> Call[list[str]]:
    """POST /queue/clear: the ids cancelled."""
    params: dict[str, str | int] = {"running": "true"} if running else {}
    return Call(
        "POST", "/queue/clear", lambda r: _decoder(_ClearedBody)(r).cancelled, params=params
    )


def history_page(
    cursor: str | None, limit: int, status: str | None, model: str | None, q: str | None
) -> Call[HistoryPage]:
    """GET /history, one page."""
    params: dict[str, str | int] = {"limit": limit}
    for key, value in (("cursor", cursor), ("status", status), ("model", model), ("q", q)):
        if value:
            params[key] = value
    return Call("GET", "/history", _decoder(HistoryPage), params=params)


def download_image(job_id: str, index: int, thumb: int | None = None) -> Call[bytes]:
    """GET /images/{job_id}/{index}: the PNG bytes (a JPEG thumbnail with ``thumb``)."""
    params: dict[str, str | int] = {"thumb": thumb} if thumb else {}
    return Call("GET", api_path("images", job_id, index), lambda r: r.content, params=params)


# What an upload can be: a file's path, its bytes, a file opened in binary mode, a PIL image.
ImageSource: TypeAlias = "str | os.PathLike[str] | bytes | IO[bytes] | PILImage"
# The kinds the daemon reads, by their first bytes: a name without a suffix says nothing.
_SIGNATURES = ((b"\x89PNG", "image/png"), (b"\xff\xd8", "image/jpeg"))
_SUFFIXES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}
# PIL modes a PNG holds as they are; others (CMYK, YCbCr, float) are sent as RGB.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


def image_part(image: ImageSource, filename: str | None = None) -> tuple[str, bytes, str]:
    """The multipart file part (name, bytes, content type) of an init image or mask."""
    if isinstance(image, str | os.PathLike):
        path = Path(image)
        data, name = path.read_bytes(), filename or path.name
    elif isinstance(image, bytes | bytearray | memoryview):
        data, name = bytes(image), filename or ""
    elif hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise ImpastoError("the file was opened in text mode: open it with 'rb'")
        name = filename or Path(str(getattr(image, "name", ""))).name
    else:
        data, name = _pil_png(image), filename or "image.png"
    kind = next((k for sig, k in _SIGNATURES if data.startswith(sig)), None)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = "image/webp"
    kind = kind or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return name or f"image{_SUFFIXES.get(kind, '')}", data, kind


def _pil_png(image: object) -> bytes:
    from PIL import Image  # a dependency of impasto; imported only when an upload needs it

    if not isinstance(image, Image.Image):
        raise TypeError(
            f"cannot upload a {type(image).__name__}: give a path, bytes, a file opened with "
            "'rb' or a PIL image"
        )
    buffer = io.BytesIO()
    (image if image.mode in _PNG_MODES else image.convert("RGB")).save(buffer, "PNG")
    return buffer.getvalue()


def upload_image(image: ImageSource, filename: str | None = None) -> Call[UploadedImage]:
    """POST /images with ``image`` as the multipart field "file"."""
    files = {"file": image_part(image, filename)}
    return Call("POST", "/images", _decoder(UploadedImage), files=files)


def upscalers() -> Call[list[UpscalerEntry]]:
    """GET /upscalers."""
    return Call("GET", "/upscalers", _decoder(list[UpscalerEntry]))


def upscale(
    image: str,
    upscaler: str,
    scale: float,
    width: int | None = None,
    height: int | None = None,
    crop: bool = True,
) -> Call[bytes]:
    """POST /upscale: the upscaled PNG of an upload, an output or inline base64."""
    body: dict[str, Any] = {"image": image, "upscaler": upscaler, "scale": scale, "crop": crop}
    if width is not None and height is not None:
        body.update(width=width, height=height)
    # A super-resolution model on a CPU takes minutes on a large picture: the answer comes
    # when it is done.
    return Call("POST", "/upscale", lambda r: r.content, body=body, read_timeout=UPSCALE_TIMEOUT)
