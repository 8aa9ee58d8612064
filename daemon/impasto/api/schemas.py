"""Wire schemas of the public API: msgspec Structs on one small base class."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Status = Literal["queued", "processing", "completed", "failed", "cancelled"]
ScheduleName = Literal["default", "karras", "exponential"]

Dimension = Annotated[int, Meta(ge=64, le=2048, multiple_of=8, description="Pixels, multiple of 8")]

# The allowed values of each request field, as error messages say them.
FIELD_RULES: dict[str, str] = {
    "prompt": "must be text of 1 to 1000 characters, not only spaces",
    "negative_prompt": "must be text of at most 1000 characters",
    "width": "must be an integer multiple of 8 between 64 and 2048",
    "height": "must be an integer multiple of 8 between 64 and 2048",
    "steps": "must be an integer between 1 and 150",
    "cfg_scale": "must be a number between 1 and 30",
    "seed": "must be -1 (random) or an integer between 0 and 4294967295",
    "batch_size": "must be an integer between 1 and 10",
    "priority": "must be an integer between -100 and 100",
    "strength": "must be a number between 0 and 1",
    "schedule": "must be one of default, karras, exponential",
    "weight": "must be a number between -2 and 2",
    "limit": "must be an integer between 1 and 200",
    "vae": "must be the name of a VAE folder installed in the models folder's vae/",
    "clip_skip": "must be an integer between 1 and 12",
    "refiner": "must be the id of an installed SDXL refiner model",
    "refiner_switch": "must be a number between 0 and 1",
}


class Schema(msgspec.Struct, kw_only=True):
    """Base of every wire schema."""


class LoraSpec(Schema):
    """A LoRA applied at run time."""

    name: Annotated[str, Meta(min_length=1, max_length=200)]
    weight: Annotated[float, Meta(ge=-2, le=2)] = 1.0


class GenerateRequest(Schema):
    """What to generate. Ranges follow the design document's GenerationRequest."""

    # re.search: at least one character that is not whitespace.
    prompt: Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"\S")]
    negative_prompt: Annotated[str, Meta(max_length=1000)] = ""
    model: str | None = None
    loras: list[LoraSpec] = msgspec.field(default_factory=list)
    width: Dimension = 512
    height: Dimension = 512
    steps: Annotated[int, Meta(ge=1, le=150)] = 20
    cfg_scale: Annotated[float, Meta(ge=1, le=30)] = 7.0
    seed: Annotated[int, Meta(ge=-1, le=4294967295)] = -1
    batch_size: Annotated[int, Meta(ge=1, le=10)] = 1
    sampler: Annotated[str, Meta(min_length=1, max_length=64)] = "euler_a"
    schedule: ScheduleName = "default"
    priority: Annotated[int, Meta(ge=-100, le=100)] = 0
    init_image: str | None = None
    mask_image: str | None = None
    strength: Annotated[float, Meta(ge=0, le=1)] = 0.75
    vae: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    clip_skip: Annotated[int, Meta(ge=1, le=12)] = 1
    refiner: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    refiner_switch: Annotated[
        float, Meta(ge=0, le=1, description="Fraction of the steps the base model runs")
    ] = 0.8
    plugins: Annotated[
        dict[str, Any], Meta(description="Options for plugins, by plugin name (docs/plugins.md)")
    ] = msgspec.field(default_factory=dict)


class QueuedResponse(Schema):
    """A job was accepted."""

    id: str
    status: Status
    position: int | None


class ImageResult(Schema):
    """One generated image."""

    index: int
    url: str
    seed: int
    width: int
    height: int


class GenerationStatus(Schema):
    """Where a job stands, with its results once done."""

    id: str
    status: Status
    progress: float
    current_step: int
    total_steps: int
    position: int | None
    priority: int
    attempts: int
    request: dict[str, Any]
    results: list[ImageResult]
    error: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None


class PriorityUpdate(Schema):
    """A new priority for a queued job."""

    priority: Annotated[int, Meta(ge=-100, le=100)]


class QueueState(Schema):
    """The active jobs in run order."""

    paused: bool
    items: list[GenerationStatus]


class PauseState(Schema):
    paused: bool


class HistoryPage(Schema):
    """One page of finished and active jobs, newest first."""

    items: list[GenerationStatus]
    next_cursor: str | None


class UploadedImage(Schema):
    """An uploaded init image or mask; pass ``upload:<id>`` in a request."""

    id: str
    width: int
    height: int
    mode: str


class ModelDefaults(Schema):
    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str


class SamplerInfo(Schema):
    id: str
    name: str
    schedules: list[str]


class Health(Schema):
    status: str
    version: str


class FieldErrorItem(Schema):
    field: str
    message: str


class ErrorBody(Schema):
    """Every error response."""

    status_code: int
    detail: str
    errors: list[FieldErrorItem] | None = None
