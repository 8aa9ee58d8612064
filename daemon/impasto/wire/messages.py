"""The other bodies routes take and answer: jobs, queue, models, catalog, events, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from impasto.wire.plans import ResolvedPlan
from impasto.wire.requests import (
    TERMINAL_STATUSES,
    Priority,
    Schema,
    Status,
)


class QueuedResponse(Schema):
    """A job was accepted."""

    id: str
    status: Status
    position: int | None


class ImageResult(Schema):
    """One generated image: ``url`` to fetch it; ``image_path``, ``seed`` and ``metadata`` as
    the design document's GenerationResult has them."""

    index: int
    url: str
    seed: int
    width: int = 0
    height: int = 0
    image_path: str = ""
    """Where the PNG lies on the daemon's machine (the outputs folder)."""
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    """The PNG's text chunks: ``parameters`` (AUTOMATIC1111's infotext), ``impasto`` (the
    plan as JSON) and what plugins add."""


class GenerationStatus(Schema):
    """Where a job stands: the request as sent, the plan that runs, its results once done."""

    id: str
    status: Status
    progress: float = 0.0
    current_step: int = 0
    total_steps: int = 0
    position: int | None = None
    priority: int = 0
    attempts: int = 0
    request: dict[str, Any] = msgspec.field(default_factory=dict)
    plan: ResolvedPlan | None = None
    results: list[ImageResult] = msgspec.field(default_factory=list)
    error: str | None = None
    warnings: list[str] = msgspec.field(default_factory=list)
    """What a completed job warns about (a LoRA whose weights matched nothing, ...)."""
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the job is completed, failed or cancelled."""
        return self.status in TERMINAL_STATUSES


class PriorityUpdate(Schema):
    """A new priority for a queued job."""

    priority: Priority


class QueueState(Schema):
    """The active jobs in run order: one page of them (``limit``/``offset``)."""

    paused: bool = False
    items: list[GenerationStatus] = msgspec.field(default_factory=list)
    total: int = 0
    """Running and queued jobs in all, beyond this page too."""
    next_offset: int | None = None
    """The offset of the next page; None on the last one."""


class PauseState(Schema):
    paused: bool


class QueueCleared(Schema):
    """What ``POST /queue/clear`` cancelled: the queued jobs in run order, then any running."""

    cancelled: list[str]


class HistoryPage(Schema):
    """One page of finished and active jobs, newest first."""

    items: list[GenerationStatus] = msgspec.field(default_factory=list)
    next_cursor: str | None = None


class UploadedImage(Schema):
    """An uploaded init image or mask; pass ``upload:<id>`` in a request."""

    id: str
    width: int = 0
    height: int = 0
    mode: str = ""


class UpscalerEntry(Schema):
    """An upscaler: ``id`` for requests, ``name`` as A1111 shows it, a model's own ``scale``."""

    id: str
    name: str = ""
    kind: str = ""
    scale: float | None = None


class UpscaleRequest(Schema):
    """Upscale one image: by ``scale``, or to ``width`` x ``height`` when both are given: by
    the larger of the two ratios, then (``crop``, A1111's default) centred on a canvas of
    exactly that size."""

    image: Annotated[
        str,
        Meta(
            min_length=1,
            description="upload:<id>, base64 or a data: URL, or an output's "
            "/api/v1/images/<job>/<index>",
        ),
    ]
    upscaler: Annotated[str, Meta(min_length=1, max_length=200)] = "lanczos"
    scale: Annotated[float, Meta(ge=1, le=8, description="Factor (mode: scale by)")] = 2.0
    width: Annotated[int, Meta(ge=8, le=8192)] | None = None
    height: Annotated[int, Meta(ge=8, le=8192)] | None = None
    crop: bool = True


class ModelDefaults(Schema):
    """What a request for this model gets for each tunable it leaves out."""

    width: int
    height: int
    steps: int
    cfg_scale: float
    sampler: str
    schedule: str = "default"


ModelType = Literal["checkpoint", "lora", "embedding", "vae"]
"""The kinds of installed model (the design document's ModelType): ``ModelDetail.type``."""
MODEL_TYPES: tuple[ModelType, ...] = get_args(ModelType)


class ModelDetail(Schema):
    """An installed model: the design document's Model record plus what Impasto detected."""

    id: str
    name: str = ""
    type: ModelType = "checkpoint"
    family: str = ""
    path: str = ""
    size: int = 0
    read_only: bool = False
    inpaint: bool = False
    prediction_type: str = ""
    zero_snr: bool = False
    """Trained for zero terminal SNR: Karras and Exponential schedules start at a top sigma far
    above any useful noise level on it, so the web UI keeps the model's own schedule."""
    defaults: ModelDefaults | None = None
    precision: str = ""
    version: str = ""
    description: str = ""
    hash: str = ""
    source: str = ""
    license: str = ""
    active: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    runs_on: list[str] = msgspec.field(default_factory=list)
    """Execution providers (short names) that can run its graphs."""
    runs_here: bool | None = None
    """Whether this machine's provider can run it; None when not assessed."""
    not_here: str = ""
    """Why it cannot run here."""
    runs_note: str = ""
    """A caveat where it runs here (fp16 on CPU)."""
    problem: str = ""
    """Why the model cannot be used (a truncated or unreadable UNet...); empty when it can."""
    clip_skip_max: int = 1
    """The largest clip_skip its text encoders were exported for (1: no clip skip)."""
    file_path: str = ""
    """The design document's name for ``path`` (always the same value)."""
    file_size: int = 0
    """The design document's name for ``size``."""
    is_active: bool = True
    """The design document's name for ``active``."""

    def __post_init__(self) -> None:
        # One source for each value: the design document's names copy Impasto's.
        self.file_path, self.file_size, self.is_active = self.path, self.size, self.active


class CatalogVariant(Schema):
    """One build of a catalog model."""

    key: str
    repo: str
    revision: str = "main"
    subfolder: str = ""
    precision: str = ""
    size: int = 0
    convert: bool = False
    convert_minutes: int = 0
    note: str = ""


class CatalogEntry(Schema):
    """A catalog model, its builds, and the one this machine's provider gets."""

    name: str
    family: str = ""
    license: str = ""
    description: str = ""
    checked: str = ""
    no_portable: str = ""
    variants: list[CatalogVariant] = msgspec.field(default_factory=list)
    chosen: str = ""
    """The variant key this machine gets; "" when none suits it."""
    summary: str = ""
    """What it gets, or why nothing."""


class SamplerInfo(Schema):
    """One sampler: its id for requests, display label, A1111 name, schedules, the steps and
    schedule it is meant to run with, and the schedule A1111's "Automatic" gives it."""

    id: str
    name: str = ""
    schedules: list[str] = msgspec.field(default_factory=list)
    a1111_name: str = ""
    aliases: list[str] = msgspec.field(default_factory=list)
    recommended_steps: int = 20
    recommended_schedule: str = "default"
    a1111_schedule: str = "default"
    """The schedule AUTOMATIC1111's "Automatic" scheduler runs it on."""
    eta: float | None = None
    """Its fresh noise per step when a request names no ``eta``; null: it takes no eta."""
    churn: bool = False
    """Whether it takes sigma churn (``s_churn``, ``s_tmin``, ``s_tmax``, ``s_noise``)."""
    discard_penultimate: bool | None = None
    """Whether it runs without the next-to-last sigma of one step more: true always (DPM2,
    DPM2 a), false when a request asks (``discard_penultimate_sigma``), null never."""
    unipc: bool = False
    """Whether it takes UniPC's order and variant (``unipc_order``, ``unipc_variant``)."""


class ScheduleInfo(Schema):
    """One sigma schedule: its id for requests, display label and A1111 scheduler name."""

    id: str
    name: str = ""
    a1111_name: str = ""
    sigma_range: bool = False
    """Whether a request may move its ends (``sigma_min``, ``sigma_max``)."""
    rho: float | None = None
    """Its default rho, which a request may change (``rho``); null: it has none."""


class FieldLimit(Schema):
    """The allowed values of one request field, read from the schema's constraints."""

    type: str
    minimum: float | None = None
    maximum: float | None = None
    multiple_of: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: list[str] | None = None
    rule: str = ""


# What the event stream says happened: a job's life (queued ... cancelled, deleted), the
# queue paused or resumed, an install's progress, a model removed; and "gap": events after a
# reconnecting client's seq were trimmed before it came back.
EventType = Literal[
    "queued",
    "started",
    "progress",
    "completed",
    "failed",
    "cancelled",
    "deleted",
    "queue",
    "install",
    "model_removed",
    "gap",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


class Event(Schema):
    """One message of the event stream; ``data`` depends on ``type``."""

    seq: int
    # Documented as the EventType enum, read as any text: a client keeps working when a later
    # daemon says something new.
    type: Annotated[str, Meta(extra_json_schema={"enum": list(EVENT_TYPES)})]
    job_id: str | None = None
    time: datetime | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class Health(Schema):
    """Liveness, and whether the daemon can run jobs: status "error" says why in ``problem``."""

    status: str
    version: str
    problem: str | None = None


class FieldErrorItem(Schema):
    field: str
    message: str


class ErrorBody(Schema):
    """Every error response."""

    status_code: int
    detail: str
    errors: list[FieldErrorItem] | None = None


def utc(ts: float | None) -> datetime | None:
    """Unix seconds as an aware UTC datetime (sent as ISO 8601 with a Z)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)
