"""Wire types of the public API: msgspec Structs the daemon serves and the client decodes.

One module, imported by the API routes and by ``impasto.client``: a type exists once. The
``Meta`` constraints on the request are the only statement of each limit; ``limits()`` reads them
for the engine, the error messages and the web UI (``GET /api/v1/limits``).
Response types give every field a default so a client stays readable against newer daemons.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

Status = Literal["queued", "processing", "completed", "failed", "cancelled"]
ScheduleName = Literal[
    "default",
    "karras",
    "exponential",
    "uniform",
    "polyexponential",
    "sgm_uniform",
    "kl_optimal",
    "align_your_steps",
    "align_your_steps_sdxl",
    "simple",
    "normal",
    "ddim_uniform",
    "beta",
]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
SEQ_MAX = 2**63 - 1  # SQLite's largest integer: no event seq or cursor of ours goes beyond it

# pattern: at least one character that is not whitespace (re.search semantics).
NOT_BLANK = r"\S"
# The text encoder takes any length in 75-token chunks (AUTOMATIC1111 has no cap either); this
# bound, some 60 chunks, only keeps one request from tying the encoder up.
MAX_PROMPT_CHARACTERS = 20_000
Prompt = Annotated[str, Meta(min_length=1, max_length=MAX_PROMPT_CHARACTERS, pattern=NOT_BLANK)]
NegativePrompt = Annotated[str, Meta(max_length=MAX_PROMPT_CHARACTERS)]
Dimension = Annotated[int, Meta(ge=64, le=2048, multiple_of=8, description="Pixels, multiple of 8")]
Steps = Annotated[int, Meta(ge=1, le=150)]
CfgScale = Annotated[
    float,
    Meta(ge=0, le=30, description="Guidance scale; 1 or less runs without CFG (one UNet batch)"),
]
Seed = Annotated[int, Meta(ge=-1, le=4294967295, description="-1 draws a random seed")]
BatchSize = Annotated[int, Meta(ge=1, le=10)]
Priority = Annotated[int, Meta(ge=-100, le=100)]
Strength = Annotated[float, Meta(ge=0, le=1)]
ClipSkip = Annotated[int, Meta(ge=1, le=12)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
HiresScale = Annotated[float, Meta(ge=1, le=4, description="Target size over the first pass's")]
LoraWeight = Annotated[float, Meta(ge=-2, le=2)]
CacheInterval = Annotated[
    int,
    Meta(
        ge=-1,
        le=10,
        description="DeepCache: the whole UNet every n-th step, its shallow part between; "
        "0 off, -1 the model family's recommended interval",
    ),
]
DecoderName = Literal["full", "fast"]
"""The final decode: the model's VAE, or the tiny TAESD decoder (docs/speed.md)."""
Name = Annotated[str, Meta(min_length=1, max_length=200)]
SamplerId = Annotated[str, Meta(min_length=1, max_length=64)]
# Query parameters: routes take their QueryParameter bounds from these (``bounds``).
PageLimit = Annotated[int, Meta(ge=1, le=200)]
PageOffset = Annotated[int, Meta(ge=0, le=10**9)]
KeepAlive = Annotated[
    float, Meta(ge=0, le=7 * 24 * 3600, description="Seconds a loaded model stays while idle")
]


class Schema(msgspec.Struct, kw_only=True):
    """Base of every wire schema."""


class LoraSpec(Schema):
    """A LoRA applied at run time, by its installed name."""

    name: Name
    weight: LoraWeight = 1.0


UpscalerName = Literal[
    "latent",
    "latent-antialiased",
    "latent-bicubic",
    "latent-bicubic-antialiased",
    "latent-nearest",
    "latent-nearest-exact",
    "lanczos",
    "nearest",
]
"""Hires fix upscalers: A1111's latent upscale modes, or a resize of the decoded image."""
HiresUpscaler = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        description="A latent mode, lanczos, nearest, or an installed super-resolution model",
    ),
]


class HiresRequest(Schema):
    """Hires fix (AUTOMATIC1111's): a second img2img pass at a larger size. Each field left out
    takes the first pass's value; ``width``/``height`` win over ``scale``."""

    scale: HiresScale = 2.0
    width: Dimension | None = None
    height: Dimension | None = None
    upscaler: HiresUpscaler = "latent"
    steps: Annotated[int, Meta(ge=0, le=150, description="0: the first pass's steps")] = 0
    strength: Strength = 0.7
    sampler: SamplerId | None = None
    prompt: Prompt | None = None
    negative_prompt: NegativePrompt | None = None
    cfg_scale: CfgScale | None = None


class ResolvedHires(Schema, kw_only=True):
    """The second pass of a plan: its size resolved, the rest as asked (None: the first's)."""

    width: int
    height: int
    upscaler: str = "latent"
    steps: int = 0
    strength: float = 0.7
    sampler: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    cfg_scale: float | None = None


class SdUpscaleRequest(Schema):
    """AUTOMATIC1111's SD upscale: ``init_image`` upscaled by ``scale``, then img2img over
    overlapping tiles of the request's ``width`` x ``height``, blended into one image."""

    scale: Annotated[float, Meta(ge=1, le=4, description="Upscale factor of the init image")] = 2.0
    overlap: Annotated[int, Meta(ge=0, le=256, description="Pixels tiles overlap by")] = 64
    upscaler: Annotated[str, Meta(min_length=1, max_length=200)] = "lanczos"


class ResolvedSdUpscale(Schema, kw_only=True):
    """SD upscale in a plan: the upscaler's id, the source size, the result's size."""

    scale: float = 2.0
    overlap: int = 64
    upscaler: str = "lanczos"
    width: int = 0
    height: int = 0


class GenerateRequest(Schema):
    """What to generate. A tunable left out (or null) takes the chosen model's default."""

    prompt: Prompt
    negative_prompt: NegativePrompt = ""
    model: str | None = None
    loras: list[LoraSpec] = msgspec.field(default_factory=list)
    width: Dimension | None = None
    height: Dimension | None = None
    steps: Steps | None = None
    cfg_scale: CfgScale | None = None
    seed: Seed = -1
    batch_size: BatchSize = 1
    sampler: SamplerId | None = None
    schedule: ScheduleName | None = None
    priority: Priority = 0
    init_image: str | None = None
    mask_image: str | None = None
    strength: Strength = 0.75
    vae: Name | None = None
    clip_skip: ClipSkip = 1
    refiner: Name | None = None
    refiner_switch: Annotated[
        float, Meta(ge=0, le=1, description="Fraction of the steps the base model runs")
    ] = 0.8
    hires: HiresRequest | None = None
    sd_upscale: SdUpscaleRequest | None = None
    cache_interval: CacheInterval = 0
    decoder: DecoderName = "full"
    plugins: Annotated[
        dict[str, Any], Meta(description="Options for plugins, by plugin name (docs/plugins.md)")
    ] = msgspec.field(default_factory=dict)


class ResolvedPlan(Schema, kw_only=True):
    """A request with every default filled in: what runs. Ids and names only, never paths."""

    prompt: str
    negative_prompt: str = ""
    model: str
    family: str = ""
    width: int
    height: int
    steps: int
    cfg_scale: float
    seed: int = -1
    batch_size: int = 1
    sampler: str
    schedule: str = "default"
    priority: int = 0
    init_image: str | None = None
    mask_image: str | None = None
    strength: float = 0.75
    loras: list[LoraSpec] = msgspec.field(default_factory=list)
    embeddings: list[str] = msgspec.field(default_factory=list)
    vae: str | None = None
    clip_skip: int = 1
    refiner: str | None = None
    refiner_switch: float = 0.8
    hires: ResolvedHires | None = None
    sd_upscale: ResolvedSdUpscale | None = None
    cache_interval: int = 0
    decoder: str = "full"
    fast_decoder: str | None = None
    """The installed TAESD for previews and ``decoder: fast`` (None: the model's own, if any)."""
    plugins: dict[str, Any] = msgspec.field(default_factory=dict)


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
    width: int = 0
    height: int = 0


class GenerationStatus(Schema):
    """Where a job stands: the request as sent, the plan that runs, its results once done."""

    id: str
    status: str
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
    scale: Annotated[float, Meta(gt=0, le=8, description="Factor (mode: scale by)")] = 2.0
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


class ModelDetail(Schema):
    """An installed model: the design document's Model record plus what Impasto detected."""

    id: str
    name: str = ""
    type: str = "checkpoint"
    family: str = ""
    path: str = ""
    size: int = 0
    read_only: bool = False
    inpaint: bool = False
    prediction_type: str = ""
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
    """One sampler: its id for requests, display label, A1111 name, schedules and steps."""

    id: str
    name: str = ""
    schedules: list[str] = msgspec.field(default_factory=list)
    a1111_name: str = ""
    aliases: list[str] = msgspec.field(default_factory=list)
    recommended_steps: int = 20


class ScheduleInfo(Schema):
    """One sigma schedule: its id for requests, display label and A1111 scheduler name."""

    id: str
    name: str = ""
    a1111_name: str = ""


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


class Event(Schema):
    """One message of the event stream; ``data`` depends on ``type``."""

    seq: int
    type: str
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


_MINUS_ONE = {"cache_interval": "the model family's recommended interval"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _rule(name: str, limit: FieldLimit) -> str:
    """The sentence error messages use for a field, e.g. "must be an integer between 1 and 150"."""
    if limit.choices:
        return f"must be one of {', '.join(limit.choices)}"
    if limit.type == "str":
        blank = ", not only spaces" if limit.pattern == NOT_BLANK else ""
        if limit.min_length:
            return f"must be text of {limit.min_length} to {limit.max_length} characters{blank}"
        return f"must be text of at most {limit.max_length} characters"
    low, high = limit.minimum, limit.maximum
    if low is None or high is None:
        return ""
    kind = "an integer" if limit.type == "int" else "a number"
    if limit.multiple_of:
        kind = f"an integer multiple of {limit.multiple_of}"
    if low == -1 and limit.type == "int":
        meaning = _MINUS_ONE.get(name, "random")
        return f"must be -1 ({meaning}) or {kind} between 0 and {_number(high)}"
    return f"must be {kind} between {_number(low)} and {_number(high)}"


def _field_limit(info: Any) -> FieldLimit | None:
    inspect = msgspec.inspect
    if isinstance(info, inspect.UnionType):
        kinds = [t for t in info.types if not isinstance(t, inspect.NoneType)]
        if len(kinds) != 1:
            return None
        info = kinds[0]
    if isinstance(info, inspect.Metadata):
        info = info.type
    if isinstance(info, inspect.LiteralType):
        # inspect sorts a Literal's values; keep the order the type declares them in.
        values = SCHEDULE_NAMES if set(info.values) == set(SCHEDULE_NAMES) else info.values
        return FieldLimit(type="str", choices=[str(v) for v in values])
    if isinstance(info, inspect.IntType | inspect.FloatType):
        return FieldLimit(
            type="int" if isinstance(info, inspect.IntType) else "float",
            minimum=info.ge,
            maximum=info.le,
            multiple_of=int(info.multiple_of) if info.multiple_of else None,
        )
    if isinstance(info, inspect.StrType):
        return FieldLimit(
            type="str",
            min_length=info.min_length,
            max_length=info.max_length,
            pattern=info.pattern,
        )
    return None


def _read_limits() -> dict[str, FieldLimit]:
    found: dict[str, FieldLimit] = {}
    for struct, prefix in (
        (GenerateRequest, ""),
        (LoraSpec, "lora_"),
        (HiresRequest, "hires_"),
        (SdUpscaleRequest, "sd_upscale_"),
    ):
        info = msgspec.inspect.type_info(struct)
        assert isinstance(info, msgspec.inspect.StructType)
        for field in info.fields:
            limit = _field_limit(field.type)
            if limit is not None and (
                limit.maximum is not None or limit.choices or limit.max_length
            ):
                name = prefix + field.name
                found[name] = msgspec.structs.replace(limit, rule=_rule(name, limit))
    return found


LIMITS: dict[str, FieldLimit] = _read_limits()
"""Request field -> its limits; ``lora_weight`` and ``lora_name`` are a LoRA's."""
# The built-in hires upscalers; GET /limits adds the installed super-resolution models.
LIMITS["hires_upscaler"] = FieldLimit(
    type="str",
    choices=list(get_args(UpscalerName)),
    rule=f"must be one of {', '.join(get_args(UpscalerName))} "
    "or the name of an installed super-resolution model (GET /api/v1/upscalers)",
)


def _limit_of(kind: Any) -> FieldLimit:
    limit = _field_limit(msgspec.inspect.type_info(kind))
    assert limit is not None and limit.maximum is not None, f"{kind} has no range"
    return limit


QUERY_LIMITS: dict[str, FieldLimit] = {
    name: msgspec.structs.replace(limit, rule=_rule(name, limit))
    for name, limit in (
        ("limit", _limit_of(PageLimit)),
        ("offset", _limit_of(PageOffset)),
        ("keep_alive", _limit_of(KeepAlive)),
    )
}
"""Query parameters with a range -> their limits."""


def bounds(kind: Any) -> dict[str, Any]:
    """``ge``, ``le`` (and a description) of a ranged type, for a route's ``QueryParameter``."""
    limit = _limit_of(kind)
    schema = getattr(msgspec.inspect.type_info(kind), "extra_json_schema", None) or {}
    found: dict[str, Any] = {"ge": limit.minimum, "le": limit.maximum}
    return {**found, "description": schema["description"]} if "description" in schema else found


# Rules of fields whose allowed values are not a range (installed names), and query parameters.
_OTHER_RULES = {
    "weight": LIMITS["lora_weight"].rule,
    **{name: limit.rule for name, limit in QUERY_LIMITS.items()},
    "vae": "must be the name of a VAE folder installed in the models folder's vae/",
    "refiner": "must be the id of an installed SDXL refiner model",
}

FIELD_RULES: dict[str, str] = {
    **{name: limit.rule for name, limit in LIMITS.items()},
    **_OTHER_RULES,
}
"""The allowed values of each request field, as error messages say them."""


def field_rule(field: str) -> str | None:
    """The rule of a field path: ``hires.scale`` is ``hires_scale``, else its last part."""
    path = re.sub(r"\[\d+\]", "", field)
    return FIELD_RULES.get(path.replace(".", "_")) or FIELD_RULES.get(path.rsplit(".", 1)[-1])
