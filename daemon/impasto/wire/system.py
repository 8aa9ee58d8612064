"""What the daemon reports about itself and its work besides jobs: the machine and its workers
(GET /system), model installs, models held in memory, plugins."""

from __future__ import annotations

from datetime import datetime

import msgspec

from impasto.wire.requests import TERMINAL_STATUSES, InstallStatus, Schema


class InstallInfo(Schema):
    """One model install task and its progress (POST /models/install, GET /models/installs)."""

    id: str
    model_id: str = ""
    source: str = ""
    status: InstallStatus = "queued"
    stage: str = ""
    bytes_done: int = 0
    bytes_total: int = 0
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    note: str = ""
    """Which build of a catalog model was picked, and why."""
    warning: str = ""
    """The model installed but cannot run on this machine's execution provider."""

    @property
    def finished(self) -> bool:
        """True once the install completed, failed or was cancelled."""
        return self.status in TERMINAL_STATUSES


class LoadedModel(Schema):
    """A model a worker holds, and when the keep-alive drops it (GET /models/loaded)."""

    model: str
    path: str = ""
    worker: str = ""
    size: int = 0
    expires_at: datetime | None = None
    expires_in: float = 0.0
    """Seconds until ``expires_at``, by the daemon's clock."""


class LoadResult(Schema):
    """How many workers were asked to load or unload a model; a load answers once each holds
    it, or after ``LOAD_WAIT_S`` with those still at it (busy with a job) in ``loading``."""

    model: str
    workers: int = 0
    loading: int = 0


class PluginInfo(Schema):
    """One discovered plugin, its state and its load error if any."""

    name: str
    version: str = ""
    enabled: bool = False
    builtin: bool = False
    hooks: list[str] = msgspec.field(default_factory=list)
    source: str = ""
    error: str | None = None
    # Its hooks' failures since the daemon started (raised, returned wrong, timed out) and the
    # last one's message: a plugin that loads but breaks requests or jobs shows here too.
    failures: int = 0
    last_failure: str | None = None


class RejectedProvider(Schema):
    """An execution provider the daemon could not use, and why."""

    name: str
    reason: str = ""


class ProviderInfo(Schema):
    """The execution provider in use and the ones considered ("" until a worker started)."""

    name: str = ""
    providers: list[str] = msgspec.field(default_factory=list)
    rejected: list[RejectedProvider] = msgspec.field(default_factory=list)
    device_id: int = 0
    threads: int = 0
    """CPU threads a session uses (0: ONNX Runtime's default)."""


class GpuInfo(Schema):
    """One NVIDIA GPU as NVML sees it; memory in bytes."""

    index: int
    name: str = ""
    memory_total: int = 0
    memory_used: int = 0


class MemoryInfo(Schema):
    """Host memory in bytes."""

    total: int = 0
    available: int = 0


class QueueCounts(Schema):
    """How many jobs wait and run, and whether the queue is paused."""

    queued: int = 0
    processing: int = 0
    paused: bool = False


class HeldModel(Schema):
    """A model in a worker's memory until ``expires_at``."""

    model: str = ""
    model_dir: str = ""
    worker: str = ""
    expires_at: datetime | None = None


class WorkerNode(Schema):
    """Where a Ray cluster worker runs: the node's address and id, and whether it has a GPU."""

    ip: str = ""
    id: str = ""
    gpu: bool = False


class WorkerInfo(Schema):
    """One inference worker process; ``node`` only for workers on a Ray cluster."""

    id: str
    pid: int | None = None
    device_id: int = 0
    state: str = ""
    job_id: str | None = None
    provider: ProviderInfo = msgspec.field(default_factory=ProviderInfo)
    loaded: list[HeldModel] = msgspec.field(default_factory=list)
    node: WorkerNode | None = None


class SystemInfo(Schema):
    """GET /system: version, provider, hardware, queue counts, loaded models and workers."""

    version: str
    provider: ProviderInfo = msgspec.field(default_factory=ProviderInfo)
    gpus: list[GpuInfo] = msgspec.field(default_factory=list)
    memory: MemoryInfo = msgspec.field(default_factory=MemoryInfo)
    queue: QueueCounts = msgspec.field(default_factory=QueueCounts)
    loaded_models: list[HeldModel] = msgspec.field(default_factory=list)
    workers: list[WorkerInfo] = msgspec.field(default_factory=list)
    uptime: float = 0.0
    """Seconds since the daemon started."""
