"""Typed results of the public API, decoded from the JSON the daemon sends."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import msgspec

from impasto import wire

TERMINAL_STATUSES = wire.TERMINAL_STATUSES


class _Result(msgspec.Struct, kw_only=True):
    """Base of every decoded result; unknown fields are ignored so newer daemons stay readable."""


# The public API's own types, one definition shared with the daemon (impasto.wire).
Health = wire.Health
JobResult = wire.ImageResult
JobStatus = wire.GenerationStatus
Event = wire.Event
ModelDefaults = wire.ModelDefaults
ModelInfo = wire.ModelDetail
SamplerInfo = wire.SamplerInfo
FieldLimit = wire.FieldLimit
ResolvedPlan = wire.ResolvedPlan
UpscalerEntry = wire.UpscalerEntry


class Submitted(NamedTuple):
    """What POST /generate answers: the job id and its place in the queue (0 = next)."""

    id: str
    position: int


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


QueueState = wire.QueueState
HistoryPage = wire.HistoryPage
UploadedImage = wire.UploadedImage
