"""Models, samplers, health and the machine."""

from __future__ import annotations

import time
from typing import Any

from litestar import Controller, get
from litestar.datastructures import State

from impasto.api.schemas import Health, SamplerInfo
from impasto.api.security import PUBLIC
from impasto.engine.schedulers import SAMPLER_NAMES, SAMPLERS, sampler_schedules
from impasto.services.system import system_report


class SystemController(Controller):
    path = "/"
    tags = ["system"]

    @get("/health", summary="Liveness: answers without a token", opt={PUBLIC: True})
    async def health(self, state: State) -> Health:
        return Health(status="ok", version=state.services.version)

    @get("/samplers", summary="Sampler ids usable in requests")
    async def samplers(self) -> list[SamplerInfo]:
        return [
            SamplerInfo(
                id=name, name=SAMPLER_NAMES.get(name, name), schedules=list(sampler_schedules(name))
            )
            for name in SAMPLERS
        ]

    @get("/system", summary="Version, execution provider, GPUs, memory, queue and workers")
    async def system(self, state: State) -> dict[str, Any]:
        report = system_report(state.services)
        report["uptime"] = round(time.time() - state.services.started_at, 1)
        return report
