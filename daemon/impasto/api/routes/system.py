"""Models, samplers, health and the machine."""

from __future__ import annotations

import asyncio
import time

import msgspec
from litestar import Controller, get

from impasto.api.dependencies import AllServices
from impasto.api.security import PUBLIC
from impasto.engine.schedulers import (
    SAMPLER_SPECS,
    SCHEDULE_SPECS,
    churn_samplers,
    unipc_samplers,
)
from impasto.services.system import machine_report, system_report
from impasto.services.upscalers import UpscalerService
from impasto.wire import LIMITS, FieldLimit, Health, SamplerInfo, ScheduleInfo, SystemInfo


class SystemController(Controller):
    path = "/"
    tags = ["system"]

    @get(
        "/health",
        summary="Liveness (without a token); status error when no worker can start",
        opt={PUBLIC: True},
    )
    async def health(self, services: AllServices) -> Health:
        supervisor = services.supervisor
        problem = supervisor.problem if supervisor else None
        return Health(
            status="error" if problem else "ok", version=services.version, problem=problem
        )

    @get("/samplers", summary="Samplers: ids for requests, labels, A1111 names, schedules")
    async def samplers(self) -> list[SamplerInfo]:
        churn, unipc = churn_samplers(), unipc_samplers()
        return [
            SamplerInfo(
                id=spec.id,
                name=spec.label,
                schedules=list(spec.schedules),
                a1111_name=spec.a1111_name,
                aliases=list(spec.aliases),
                recommended_steps=spec.recommended_steps,
                eta=spec.cls.eta_default,
                churn=spec.id in churn,
                discard_penultimate=getattr(spec.cls, "discards_penultimate", None),
                unipc=spec.id in unipc,
                recommended_schedule=spec.recommended_schedule,
                a1111_schedule=spec.a1111_schedule,
            )
            for spec in SAMPLER_SPECS.values()
        ]

    @get("/schedules", summary="Sigma schedules: ids for requests, labels, A1111 names")
    async def schedules(self) -> list[ScheduleInfo]:
        return [
            ScheduleInfo(
                id=spec.id,
                name=spec.label,
                a1111_name=spec.a1111_name,
                sigma_range=spec.sigma_range,
                rho=spec.rho if spec.rho > 0 else None,
            )
            for spec in SCHEDULE_SPECS.values()
        ]

    @get("/limits", summary="The allowed values of each request field (from the schema)")
    async def limits(self, services: AllServices) -> dict[str, FieldLimit]:
        # The hires upscaler menu lists the installed super-resolution models too.
        models = await asyncio.to_thread(UpscalerService(services.catalog.models_dir).models)
        hires = LIMITS["hires_upscaler"]
        choices = [*(hires.choices or []), *(m for m in models if m not in (hires.choices or []))]
        return {**LIMITS, "hires_upscaler": msgspec.structs.replace(hires, choices=choices)}

    @get("/system", summary="Version, execution provider, GPUs, memory, queue and workers")
    async def system(self, services: AllServices) -> SystemInfo:
        machine = await asyncio.to_thread(machine_report, services)
        return system_report(services, machine, round(time.time() - services.started_at, 1))
