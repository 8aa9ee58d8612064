"""The services one daemon runs, bundled so the API layer receives them in one object."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from impasto.paths import Paths
from impasto.services.events import EventBus
from impasto.services.images import UploadStore
from impasto.services.jobs import JobService
from impasto.services.models import ModelCatalog
from impasto.services.supervisor import Supervisor
from impasto.settings import Settings


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
    extra: dict[str, Any] = field(default_factory=dict)
