"""A worker actor as the base supervisor sees a worker process: its slot, pipe and end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from impasto.worker.processes import WorkerHandle, describe_exit
from impasto.worker.protocol import LoadModel, RunJob, ToWorker
from impasto.worker.ray.manifest import FileIndex
from impasto.worker.ray.messages import (
    ClusterJob,
    ClusterLoad,
    Deliver,
    Kill,
    NodeInfo,
    ToBridge,
    encode,
)


class Bridged(Protocol):
    """What a handle needs of its supervisor: the head's file index and the bridge's pipe."""

    files: FileIndex
    models_dir: Path  # the head's models folder: what is in it is sent, bundled models are not

    async def to_bridge(self, message: ToBridge) -> None: ...
    def post(self, message: ToBridge) -> None: ...


@dataclass(frozen=True)
class NodeSlot:
    """One worker place: a GPU of a node, or one of a CPU-only node's configured slots."""

    node_id: str
    ip: str
    index: int
    gpu: bool
    number: int  # unique per daemon run: the base supervisor keys start failures by it

    @property
    def key(self) -> tuple[str, int]:
        return (self.node_id, self.index)


def node_slots(node: NodeInfo, cpu_workers: int) -> list[tuple[str, int]]:
    """(node id, index) of every worker a live node should run: one per GPU, else CPU slots."""
    count = node.gpus or min(cpu_workers, int(node.cpus))
    return [(node.node_id, i) for i in range(count)]


class ActorProcess:
    """The little of a process the base supervisor asks of a worker: pid, exit, wait, kill."""

    def __init__(self, supervisor: Bridged, key: str) -> None:
        self.supervisor = supervisor
        self.key = key
        self.pid: int | None = None
        self.returncode: int | None = None
        self.ended = asyncio.Event()

    async def wait(self) -> int | None:
        await self.ended.wait()
        return self.returncode

    def kill(self) -> None:
        self.supervisor.post(Kill(self.key))


@dataclass
class RayWorkerHandle(WorkerHandle):
    """A worker actor as the base supervisor sees a worker process."""

    slot: NodeSlot | None = None
    owner: Bridged | None = None
    current: RunJob | None = None  # the job sent last, with the head's paths
    lost: str = ""
    out_of_memory: bool = False  # Ray's memory monitor stopped it

    @property
    def key(self) -> str:
        return self.process.key  # type: ignore[attr-defined]

    async def send(self, message: ToWorker) -> None:
        assert self.owner is not None
        files = self.owner.files
        body: bytes
        if isinstance(message, RunJob):
            self.current = message
            manifest = await asyncio.to_thread(files.for_job, message)
            body = encode(ClusterJob(run=message, manifest=manifest))
        elif isinstance(message, LoadModel):
            models_dir = self.owner.models_dir
            manifest = await asyncio.to_thread(files.for_model, models_dir, message.model_dir)
            body = encode(ClusterLoad(load=message, manifest=manifest))
        else:
            body = encode(message)
        await self.owner.to_bridge(Deliver(self.key, body))

    def exit_reason(self) -> str:
        where = self.slot.ip if self.slot else "?"
        if self.out_of_memory:
            return (
                f"out of memory: Ray's memory monitor stopped the worker on node {where} "
                f"({self.lost or 'the node was over its memory threshold'}); a smaller size "
                "or batch, or fewer jobs at once, needs less"
            )
        if self.lost:
            return f"worker on Ray node {where} lost ({self.lost})"
        return describe_exit(self.process.returncode)

    def memory_kill(self, oom_kills_before: int | None, oom_kills_after: int | None) -> str:
        """Ray says so (the daemon's cgroup counts nothing on another machine)."""
        return self.exit_reason() if self.out_of_memory else ""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.slot:
            data["node"] = {"ip": self.slot.ip, "id": self.slot.node_id, "gpu": self.slot.gpu}
        return data
