"""The script interface: what a script declares, what it gets to run with, what it hands back.

A script (AUTOMATIC1111's "X/Y/Z plot", "Loopback", ...) turns one generation request into
ordinary queued jobs and composes their images. Adding one is one class and one entry in
``registry.SCRIPTS``:

- ``title``: A1111's title ("SD upscale"); clients select it case-insensitively.
- ``txt2img`` / ``img2img``: the tabs it runs in.
- ``arguments(is_img2img)``: its arguments in A1111's order, with their defaults, ranges and
  choices. ``/sdapi/v1/script-info`` lists them and ``parse_args`` reads ``script_args`` with
  them (missing trailing arguments take their defaults).
- ``async run(ctx, args)``: queue jobs through ``ctx.generate`` and return a ``ScriptOutput``.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import msgspec
from PIL import Image, PngImagePlugin

from impasto.engine.noise import offset_seed, resolve_seed
from impasto.formats.png import PARAMETERS_KEY, parse_a1111_parameters
from impasto.services import compat
from impasto.services.compat import ResultImage
from impasto.services.container import Services
from impasto.services.errors import FieldError
from impasto.wire import GenerateRequest, convert_allowing_empty_prompt, decode_error

ArgKind = Literal["bool", "int", "float", "str", "choice", "index", "list", "upscaler"]
FIELD = "script_args"


@dataclass(frozen=True)
class ScriptArg:
    """One argument: A1111's ScriptArg fields plus how ``script_args`` values are read.

    ``index`` arguments are dropdowns A1111 sends as the index of one of ``choices`` (X type);
    the label itself is accepted too. ``upscaler`` arguments index the installed upscalers
    (``/sdapi/v1/upscalers``), which the script checks when it runs; ``/script-info`` lists them
    as the choices. A label of None is A1111's for a control without one (an info text).
    """

    label: str | None
    kind: ArgKind
    value: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None

    def info(self) -> dict[str, Any]:
        """A1111's ScriptArg model."""
        return {
            "label": self.label,
            "value": self.value,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "step": self.step,
            "choices": list(self.choices) if self.choices is not None else None,
        }


class SamplerNames(Protocol):
    """A1111 sampler names to Impasto's (sampler id, schedule); ValueError names the choices.
    ``hires``: the schedule the hires pass's scheduler gives it."""

    def __call__(self, name: str, hires: bool = False) -> tuple[str, str]: ...


@dataclass
class ScriptContext:
    """What a script runs with: the request as the tab built it, and the job machinery."""

    services: Services
    is_img2img: bool
    # One request per iteration (A1111's n_iter), seeds already numbered; never empty.
    iterations: list[GenerateRequest]
    sampler_names: SamplerNames
    # The caller's ``generate``: queue requests as one task, wait, return the finished jobs.
    run_jobs: Callable[[list[GenerateRequest]], Awaitable[list[Any]]]
    # The init image as the client sent it, before the tab resized it to width x height, as
    # ``upload:<id>`` (stored on the first call; None without one). For SD upscale.
    source_image: Callable[[], Awaitable[str | None]] | None = None
    # A1111's sigma churn settings for the request, whatever its sampler: what a sampler
    # that takes churn, picked by an axis, runs with.
    churn: dict[str, Any] = field(default_factory=dict)
    # A1111's settings for the request that apply where a cell's run uses them, whatever the
    # request's own run: the schedule options (sigma min/max, rho), which a schedule picked by
    # an axis may take, and the skipping of the negative pass, which a CFG axis may bring.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> GenerateRequest:
        return self.iterations[0]

    async def generate(self, requests: list[GenerateRequest]) -> list[list[ResultImage]]:
        """Queue ``requests`` (checked first, all or none), wait; the images of each, in order.

        A cancelled job (``/interrupt``, ``/skip``) gives an empty list.
        """
        checked = [check(request) for request in requests]
        await asyncio.to_thread(self._resolve_all, checked)
        jobs = await self.run_jobs(checked)
        failed = [job for job in jobs if job.status == "failed"]
        if failed:
            raise ScriptFailed(f"generation failed: {failed[0].error}")
        images = await asyncio.to_thread(
            lambda: [compat.result_images(self.services, [job]) for job in jobs]
        )
        return images

    async def upload(self, png: bytes) -> str:
        """An image as ``upload:<id>``, for a request's init image."""

        def save() -> str:
            with Image.open(io.BytesIO(png)) as image:
                upload_id, _ = self.services.uploads.save_image(image.convert("RGB"))
            return f"upload:{upload_id}"

        return await asyncio.to_thread(save)

    def _resolve_all(self, requests: list[GenerateRequest]) -> None:
        """Resolve every request before queueing any, so a bad value queues nothing.

        The request as the tab built it is resolved first: its errors name its own fields.
        Requests that differ only in their seed resolve alike, so each shape resolves once.
        """
        self.services.jobs.plan(self.base)
        seen: set[bytes] = set()
        for request in requests:
            shape = msgspec.json.encode(msgspec.structs.replace(request, seed=-1))
            if shape in seen:
                continue
            seen.add(shape)
            try:
                self.services.jobs.plan(request)
            except FieldError as exc:
                raise FieldError(
                    FIELD, f"a script value makes {exc.field} invalid: {exc.message}"
                ) from None

    def size_of(self, request: GenerateRequest) -> tuple[int, int]:
        """The image size ``request`` makes, the model's default filling a missing side
        (reads the catalog: call in a thread)."""
        if request.width and request.height:
            return request.width, request.height
        defaults = self.services.jobs.resolver.model(request.model).defaults
        return request.width or defaults.width, request.height or defaults.height

    def iterate(self, request: GenerateRequest) -> list[GenerateRequest]:
        """``request`` once per iteration (n_iter), seeds numbered on from its seed as A1111's."""
        if request.seed == -1:
            return [request] * len(self.iterations)
        return [
            msgspec.structs.replace(
                request, seed=offset_seed(request.seed, index * request.batch_size)
            )
            for index in range(len(self.iterations))
        ]

    @staticmethod
    def random_seed() -> int:
        """A seed drawn now, for -1 where the script needs one seed (A1111's fix_seed)."""
        return resolve_seed(-1)


class ScriptFailed(Exception):
    """A job of the script failed; the message is the worker's error."""


@dataclass
class ScriptOutput:
    """The images to return (grids first) and what A1111's info JSON reports about them."""

    images: list[ResultImage]
    prompts: list[str]
    index_of_first_image: int = 0
    # Shown in info["extra_generation_params"], as A1111's scripts add them.
    extra: dict[str, Any] = field(default_factory=dict)


class Script(Protocol):
    """One selectable A1111 script (see the module docstring)."""

    title: str
    txt2img: bool
    img2img: bool

    def arguments(self, is_img2img: bool) -> list[ScriptArg]: ...

    async def run(self, ctx: ScriptContext, args: list[Any]) -> ScriptOutput: ...


def check(request: GenerateRequest) -> GenerateRequest:
    """A request a script changed, checked against the native schema again.

    A script's values (a steps axis of 500) break the schema's limits only here, so the error
    names ``script_args`` with the rule. An empty prompt stays empty, as the compatible APIs allow.
    """
    try:
        return convert_allowing_empty_prompt(msgspec.to_builtins(request), GenerateRequest)
    except msgspec.ValidationError as exc:
        name, rule = decode_error(str(exc), schema=GenerateRequest)
        raise FieldError(FIELD, f"a script value makes {name} invalid: {rule}") from None


def parse_args(specs: Sequence[ScriptArg], values: list[Any] | None) -> list[Any]:
    """``script_args`` read against the script's arguments; missing ones take the defaults."""
    values = list(values or [])
    if len(values) > len(specs):
        raise FieldError(FIELD, f"the script takes at most {len(specs)} arguments")
    out = []
    for position, spec in enumerate(specs):
        value = values[position] if position < len(values) else None
        out.append(_read(spec, position, value))
    return out


def _read(spec: ScriptArg, position: int, value: Any) -> Any:
    where = f"argument {position} ({spec.label})"
    if value is None:
        value = spec.value
        if spec.kind == "index":
            return (spec.choices or ()).index(value)
        if spec.kind == "list":
            return []
        return value
    if spec.kind == "upscaler":
        return value  # an index or a name; the script resolves it against what is installed
    try:
        if spec.kind == "bool":
            return _bool(value)
        if spec.kind == "int":
            return _ranged(spec, int(float(value)), where)
        if spec.kind == "float":
            return _ranged(spec, float(value), where)
        if spec.kind == "list":
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
        if spec.kind == "index":
            return _index(spec, value, where)
        if spec.kind == "choice":
            return _choice(spec, str(value), where)
        return str(value)
    except (TypeError, ValueError):
        raise FieldError(FIELD, f"{where} must be a {spec.kind}, not {value!r}") from None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if value.strip().lower() in ("false", "0", "no", "off", ""):
            return False
        raise ValueError(value)
    return bool(value)


def _ranged(spec: ScriptArg, value: float, where: str) -> Any:
    low, high = spec.minimum, spec.maximum
    if (low is not None and value < low) or (high is not None and value > high):
        raise FieldError(FIELD, f"{where} must be between {low} and {high}")
    return value


def _index(spec: ScriptArg, value: Any, where: str) -> int:
    choices = spec.choices or ()
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        lowered = [c.lower() for c in choices]
        if value.strip().lower() in lowered:
            return lowered.index(value.strip().lower())
        raise FieldError(FIELD, f"{where} must be one of: {', '.join(choices)}")
    index = int(value)
    if not 0 <= index < len(choices):
        raise FieldError(FIELD, f"{where} must be an index from 0 to {len(choices) - 1}")
    return index


def _choice(spec: ScriptArg, value: str, where: str) -> str:
    for choice in spec.choices or ():
        if choice.lower() == value.strip().lower():
            return choice
    raise FieldError(FIELD, f"{where} must be one of: {', '.join(spec.choices or ())}")


def quote(value: object) -> str:
    """A1111's infotext quoting: JSON-quote a value holding a comma, a colon or a newline."""
    text = str(value)
    if "," not in text and ":" not in text and "\n" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def infotext_with(infotext: str, params: dict[str, Any]) -> str:
    """``infotext`` with ``params`` appended to its settings line, as A1111's scripts add them."""
    pairs = ", ".join(f"{key}: {quote(value)}" for key, value in params.items())
    return f"{infotext}, {pairs}" if infotext else pairs


def prompt_of(image: ResultImage) -> str:
    """The prompt written in an image's infotext."""
    return str(parse_a1111_parameters(image.infotext).get("prompt") or "")


def with_parameters(image: Image.Image, infotext: str) -> bytes:
    """``image`` as PNG bytes carrying ``infotext`` as A1111's parameters chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, infotext)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def composed(image: Image.Image, infotext: str, seed: int) -> ResultImage:
    """A grid the script drew, as a result image (no job behind it)."""
    return ResultImage(
        "", -1, seed, image.width, image.height, with_parameters(image, infotext), infotext
    )


def decode(result: ResultImage) -> Image.Image:
    """A result's pixels (call in a thread)."""
    with Image.open(io.BytesIO(result.png)) as image:
        return image.convert("RGB")
