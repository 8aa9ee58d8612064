"""The services one daemon runs, bundled so the API layer receives them in one object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from impasto.paths import Paths
from impasto.plugins.manager import PluginHost
from impasto.services.events import EventBus
from impasto.services.images import UploadStore
from impasto.services.jobs import JobService
from impasto.services.manager import ModelManager
from impasto.services.models import ModelCatalog
from impasto.settings import Settings
from impasto.worker.supervisor import Supervisor


@dataclass
class Services:
    """Everything routes call; built by the daemon at start, faked or real in tests."""

    settings: Settings
    paths: Paths
    jobs: JobService
    bus: EventBus
    catalog: ModelCatalog
    uploads: UploadStore
    supervisor: Supervisor | None
    version: str
    started_at: float = field(default_factory=time.time)
    # The plugin host, or None when plugins are off.
    plugins: PluginHost | None = None
    # The model manager (installs, removal, load/unload); None in tests that build services bare.
    models: ModelManager | None = None
    extra: dict[str, Any] = field(default_factory=dict)
