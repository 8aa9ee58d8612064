"""Typed client of the Impasto daemon's public HTTP API (sync and asyncio)."""

from impasto.client.aio import AsyncClient
from impasto.client.core import ImageSource
from impasto.client.discovery import Endpoint, resolve_endpoint
from impasto.client.errors import (
    ApiError,
    DaemonNotRunning,
    FieldError,
    ImpastoError,
    SettingsError,
    StreamError,
    UnsendableRequest,
)
from impasto.client.sync import Client
from impasto.client.types import (
    Event,
    GpuInfo,
    Health,
    HistoryPage,
    JobResult,
    JobStatus,
    ModelInfo,
    QueueState,
    SamplerInfo,
    Submitted,
    SystemInfo,
    UploadedImage,
    UpscalerEntry,
)

__all__ = [
    "ApiError",
    "AsyncClient",
    "Client",
    "DaemonNotRunning",
    "Endpoint",
    "Event",
    "FieldError",
    "GpuInfo",
    "Health",
    "HistoryPage",
    "ImageSource",
    "ImpastoError",
    "JobResult",
    "JobStatus",
    "ModelInfo",
    "QueueState",
    "SamplerInfo",
    "SettingsError",
    "StreamError",
    "Submitted",
    "SystemInfo",
    "UnsendableRequest",
    "UploadedImage",
    "UpscalerEntry",
    "resolve_endpoint",
]
