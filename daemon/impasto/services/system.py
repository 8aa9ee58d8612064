"""What the daemon reports about itself and the machine."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from impasto.services.manager import worker_expiry
from impasto.wire import HeldModel, SystemInfo, WorkerInfo

if TYPE_CHECKING:
    from impasto.services.container import Services


def gpus() -> list[dict[str, Any]]:
    """NVIDIA GPUs and their memory through NVML; empty when there is no driver."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    found = []
    try:
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            found.append(
                {
                    "index": index,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_total": int(mem.total),
                    "memory_used": int(mem.used),
                }
            )
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()
    return found


def memory() -> dict[str, int]:
    """Total and available RAM in bytes (from /proc/meminfo or sysconf)."""
    try:
        with open("/proc/meminfo") as fh:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in fh}
        return {"total": info["MemTotal"], "available": info.get("MemAvailable", info["MemFree"])}
    except (OSError, KeyError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
        size = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0
        return {"total": pages * size, "available": 0}


def machine_report(services: Services) -> dict[str, Any]:
    """The blocking half of the report (NVML, /proc, a COUNT over every job): call in a thread."""
    return {"gpus": gpus(), "memory": memory(), "counts": services.jobs.store.counts()}


def _worker(described: dict[str, Any]) -> WorkerInfo:
    """A worker as the supervisor describes it, its models' expiry as a time."""
    held = [
        HeldModel(
            model=Path(model["model_dir"]).name,
            model_dir=model["model_dir"],
            worker=described["id"],
            expires_at=worker_expiry(model.get("expires_at")),
        )
        for model in described["loaded"]
    ]
    return msgspec.convert({**described, "loaded": held}, WorkerInfo, from_attributes=True)


def system_report(
    services: Services, machine: dict[str, Any] | None = None, uptime: float = 0.0
) -> SystemInfo:
    machine = machine if machine is not None else machine_report(services)
    counts = machine["counts"]
    supervisor = services.supervisor
    workers = [_worker(w) for w in supervisor.describe()] if supervisor else []
    return msgspec.convert(
        {
            "version": services.version,
            "provider": supervisor.provider if supervisor else {},
            "gpus": machine["gpus"],
            "memory": machine["memory"],
            "queue": {
                "queued": counts.get("queued", 0),
                "processing": counts.get("processing", 0),
                "paused": services.jobs.paused,
            },
            "loaded_models": [model for worker in workers for model in worker.loaded],
            "workers": workers,
            "uptime": uptime,
        },
        SystemInfo,
        from_attributes=True,
    )
