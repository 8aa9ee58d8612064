"""Typed results of the public API, decoded from the JSON the daemon sends."""

from __future__ import annotations

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
    """What POST /generate answers: the job id and its place in the queue (0 = next; None
    once the job has left the queue: already running, or finished when an Idempotency-Key
    replays an earlier submit)."""

    id: str
    position: int | None


RejectedProvider = wire.RejectedProvider
ProviderInfo = wire.ProviderInfo
GpuInfo = wire.GpuInfo
MemoryInfo = wire.MemoryInfo
QueueCounts = wire.QueueCounts
HeldModel = wire.HeldModel
WorkerInfo = wire.WorkerInfo
SystemInfo = wire.SystemInfo
QueueState = wire.QueueState
HistoryPage = wire.HistoryPage
UploadedImage = wire.UploadedImage
