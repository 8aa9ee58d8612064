"""What the daemon reports about itself and the machine."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from impasto.services.events import iso_time

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


def _expiry(value: Any) -> str | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return iso_time(seconds) if 0 < seconds < 1e11 else None  # nan and inf fail both tests


def system_report(services: Services, machine: dict[str, Any] | None = None) -> dict[str, Any]:
    machine = machine if machine is not None else machine_report(services)
    counts = machine["counts"]
    supervisor = services.supervisor
    workers = supervisor.describe() if supervisor else []
    loaded = [
        {
            "model": Path(model["model_dir"]).name,
            "model_dir": model["model_dir"],
            "worker": w["id"],
            "expires_at": _expiry(model.get("expires_at")),
        }
        for w in workers
        for model in w["loaded"]
    ]
    return {
        "version": services.version,
        "provider": supervisor.provider if supervisor else {},
        "gpus": machine["gpus"],
        "memory": machine["memory"],
        "queue": {
            "queued": counts.get("queued", 0),
            "processing": counts.get("processing", 0),
            "paused": services.jobs.paused,
        },
        "loaded_models": loaded,
        "workers": workers,
    }
