"""Typed results of the public API, decoded from the JSON the daemon sends."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


class _Result(msgspec.Struct, kw_only=True):
    """Base of every decoded result; unknown fields are ignored so newer daemons stay readable."""


class Health(_Result):
    """GET /health: the daemon answers and says its version; status "error" names a problem."""

    status: str
    version: str
    problem: str | None = None


class JobResult(_Result):
    """One finished image of a job."""

    index: int
    url: str
    seed: int
    width: int
    height: int


class JobStatus(_Result):
    """The state of one generation job (GET /generate/{id})."""

    id: str
    status: str
    progress: float = 0.0
    current_step: int = 0
    total_steps: int = 0
    position: int | None = None
    priority: int = 0
    attempts: int = 0
    request: dict[str, Any] = msgspec.field(default_factory=dict)
    results: list[JobResult] = msgspec.field(default_factory=list)
    error: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def finished(self) -> bool:
        """True once the job is completed, failed or cancelled."""
        return self.status in TERMINAL_STATUSES


class Submitted(NamedTuple):
    """What POST /generate answers: the job id and its place in the queue (0 = next)."""

    id: str
    position: int


class Event(_Result):
    """One message of the event stream; ``data`` depends on ``type``."""

    seq: int
    type: str
    job_id: str | None = None
    time: datetime | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class ModelDefaults(_Result):
    """Generation defaults a model suggests."""

    width: int = 512
    height: int = 512
    steps: int = 20
    cfg_scale: float = 7.0
    sampler: str = "euler_a"


class ModelInfo(_Result):
    """One installed model (GET /models)."""

    id: str
    name: str
    type: str = "checkpoint"
    family: str = ""
    path: str = ""
    size: int = 0
    read_only: bool = False
    inpaint: bool = False
    prediction_type: str = ""
    defaults: ModelDefaults = msgspec.field(default_factory=ModelDefaults)


class SamplerInfo(_Result):
    """One sampler and the noise schedules it supports (GET /samplers)."""

    id: str
    name: str
    schedules: list[str] = msgspec.field(default_factory=list)


class RejectedProvider(_Result):
    """An execution provider the daemon could not use, and why."""

    name: str
    reason: str


class ProviderInfo(_Result):
    """The execution provider in use and the ones considered ("" until a worker started)."""

    name: str = ""
    providers: list[str] = msgspec.field(default_factory=list)
    rejected: list[RejectedProvider] = msgspec.field(default_factory=list)


class GpuInfo(_Result):
    """One GPU as seen by the daemon; memory in bytes."""

    index: int
    name: str
    memory_total: int = 0
    memory_used: int = 0


class MemoryInfo(_Result):
    """Host memory in bytes."""

    total: int = 0
    available: int = 0


class QueueCounts(_Result):
    """How many jobs wait and run, and whether the queue is paused."""

    queued: int = 0
    processing: int = 0
    paused: bool = False


class LoadedModel(_Result):
    """A model held in memory by a worker until ``expires_at``."""

    model: str
    expires_at: datetime | None = None


class WorkerInfo(_Result):
    """One inference worker process."""

    id: int | str
    pid: int | None = None
    state: str = ""
    job_id: str | None = None


class SystemInfo(_Result):
    """GET /system: version, provider, hardware, queue counts, loaded models and workers."""

    version: str
    provider: ProviderInfo
    gpus: list[GpuInfo] = msgspec.field(default_factory=list)
    memory: MemoryInfo = msgspec.field(default_factory=MemoryInfo)
    queue: QueueCounts = msgspec.field(default_factory=QueueCounts)
    loaded_models: list[LoadedModel] = msgspec.field(default_factory=list)
    workers: list[WorkerInfo] = msgspec.field(default_factory=list)


class QueueState(_Result):
    """GET /queue: running jobs first, then queued ones in run order."""

    paused: bool
    items: list[JobStatus] = msgspec.field(default_factory=list)
    total: int = 0  # running and queued jobs in all (items is the first page)
    next_offset: int | None = None


class HistoryPage(_Result):
    """One page of GET /history, newest first; ``next_cursor`` is None on the last page."""

    items: list[JobStatus] = msgspec.field(default_factory=list)
    next_cursor: str | None = None


class UploadedImage(_Result):
    """POST /images: the id to pass as ``upload:<id>`` and the image's size."""

    id: str
    width: int = 0
    height: int = 0
    mode: str = ""
