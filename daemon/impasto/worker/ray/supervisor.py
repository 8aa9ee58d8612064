"""Workers on a Ray cluster, driven by the local supervisor's own job loop.

``RaySupervisor`` keeps one worker actor per GPU (or per configured CPU slot) of every live
node. Each actor is wrapped in a handle the base ``Supervisor`` drives exactly like a worker
process: it claims a job from the SQLite queue, sends it, relays progress, and requeues it
with an attempt counted when the worker is lost. Ray is the transport and the placement; the
queue stays on the head.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from impasto.formats.png import TEMP_PREFIX, TEMP_SUFFIX
from impasto.settings import Settings
from impasto.worker.protocol import JobDone, LoadModel, ModelsLoaded, Ready, RunJob, ToWorker
from impasto.worker.ray.actor import WorkerActor
from impasto.worker.ray.manifest import FileIndex
from impasto.worker.ray.messages import (
    CHUNK,
    ClusterJob,
    ClusterLoad,
    NeedBlobs,
    Outputs,
    decode_from_actor,
    encode,
)
from impasto.worker.supervisor import JobRunner, Supervisor, WorkerHandle, describe_exit

log = logging.getLogger("impasto.supervisor")
PLACE_EVERY_S = 1.0  # how often the node list is read: a joining node gets workers this fast
CONNECT_PROBLEM = -1  # the key of "cannot reach the cluster" among the supervisor's problems
RemoteWorker: Any = ray.remote(WorkerActor)


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


def node_slots(node: dict[str, Any], cpu_workers: int) -> list[tuple[str, str, int, bool]]:
    """(node id, ip, index, gpu) of every worker a live node of ``ray.nodes()`` should run."""
    resources = node.get("Resources") or {}
    gpus = int(resources.get("GPU", 0))
    count = gpus or min(cpu_workers, int(resources.get("CPU", 0)))
    return [(node["NodeID"], node["NodeManagerAddress"], i, gpus > 0) for i in range(count)]


class ActorProcess:
    """The little of a process the base supervisor asks of a worker: pid, exit, wait, kill."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.pid: int | None = None
        self.returncode: int | None = None
        self.ended = asyncio.Event()

    async def wait(self) -> int | None:
        await self.ended.wait()
        return self.returncode

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            ray.kill(self.actor, no_restart=True)


@dataclass
class RayWorkerHandle(WorkerHandle):
    """A worker actor as the base supervisor sees a worker process."""

    slot: NodeSlot | None = None
    files: FileIndex = field(default_factory=FileIndex)
    current: RunJob | None = None  # the job sent last, with the head's paths
    lost: str = ""

    @property
    def actor(self) -> Any:
        return self.process.actor  # type: ignore[attr-defined]

    async def send(self, message: ToWorker) -> None:
        body: bytes
        if isinstance(message, RunJob):
            self.current = message
            manifest = await asyncio.to_thread(self.files.for_job, message)
            body = encode(ClusterJob(run=message, manifest=manifest))
        elif isinstance(message, LoadModel):
            models_dir = Path(message.model_dir).parent
            manifest = await asyncio.to_thread(self.files.for_model, models_dir, message.model_dir)
            body = encode(ClusterLoad(load=message, manifest=manifest))
        else:
            body = encode(message)
        # A lost actor shows as the end of its message stream; the reader records why.
        with contextlib.suppress(RayError):
            await self.actor.deliver.remote(body)

    def exit_reason(self) -> str:
        if self.lost:
            where = self.slot.ip if self.slot else "?"
            return f"worker on Ray node {where} lost ({self.lost})"
        return describe_exit(self.process.returncode)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if self.slot:
            data["node"] = {"ip": self.slot.ip, "id": self.slot.node_id, "gpu": self.slot.gpu}
        return data


class RaySupervisor(Supervisor):
    """Worker actors on every live node of a Ray cluster, fed from the head's queue."""

    def __init__(self, runner: JobRunner, settings: Settings, log_dir: Path | None = None) -> None:
        super().__init__(runner, count=1, log_dir=log_dir)
        self.settings = settings
        self.files = FileIndex()  # shared: a model is hashed once for every worker
        self._slots: dict[tuple[str, int], NodeSlot] = {}
        self._numbers = itertools.count()
        self._transfers: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run_cluster(), name="ray-cluster"))

    async def stop(self, timeout: float = 10.0) -> None:
        await super().stop(timeout)
        for task in self._transfers:
            task.cancel()
        if ray.is_initialized():
            await asyncio.to_thread(ray.shutdown)

    async def _run_cluster(self) -> None:
        await self._connect()
        while not self._stopping:
            try:
                nodes = await asyncio.to_thread(ray.nodes)
            except Exception as exc:
                log.warning("cannot list the Ray cluster's nodes (%s)", exc)
            else:
                self._place([n for n in nodes if n.get("Alive")])
            await asyncio.sleep(PLACE_EVERY_S)

    async def _connect(self) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                await asyncio.to_thread(connect, self.settings.cluster)
            except Exception as exc:
                self._problems[CONNECT_PROBLEM] = (
                    f"cannot connect to the Ray cluster at {self.settings.cluster!r} ({exc}); "
                    "check the address, and that `ray start` runs there (docs/cluster.md)"
                )
                log.error("%s", self._problems[CONNECT_PROBLEM])
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                self._problems.pop(CONNECT_PROBLEM, None)
                log.info("connected to the Ray cluster at %s", self.settings.cluster)
                return

    def _place(self, nodes: list[dict[str, Any]]) -> None:
        """Start a worker for every new slot; let go of the slots of nodes that left."""
        wanted = {
            (node_id, index): (node_id, ip, index, gpu)
            for node in nodes
            for node_id, ip, index, gpu in node_slots(node, self.settings.cluster_cpu_workers)
        }
        for key, (node_id, ip, index, gpu) in wanted.items():
            if key not in self._slots:
                slot = NodeSlot(node_id, ip, index, gpu, next(self._numbers))
                self._slots[key] = slot
                name = f"ray-worker-{slot.number}"
                self._tasks.append(asyncio.create_task(self._keep_slot(slot), name=name))
        for key in [k for k in self._slots if k not in wanted]:
            slot = self._slots.pop(key)
            log.warning("Ray node %s (%s) left the cluster", slot.ip, slot.node_id[:8])
            for handle in self._handles_of(slot):
                handle.lost = handle.lost or "the node left the cluster"
                handle.process.kill()

    def _handles_of(self, slot: NodeSlot) -> list[RayWorkerHandle]:
        return [
            h for h in self.handles.values() if isinstance(h, RayWorkerHandle) and h.slot == slot
        ]

    async def _keep_slot(self, slot: NodeSlot) -> None:
        backoff = 0.5
        while not self._stopping and self._slots.get(slot.key) is slot:
            started = time.monotonic()
            handle = self._spawn_actor(slot)
            self.handles[handle.id] = handle
            try:
                await self._serve(handle)
            except Exception:
                log.exception("supervising %s failed", handle.id)
                handle.process.kill()
            await handle.process.wait()
            if self._stopping:
                return
            self._retry_unsettled()
            log.warning("%s: %s", handle.id, handle.exit_reason())
            if not handle.ready:
                await self._start_failed(slot.number, handle)
            backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)
        for handle in self._handles_of(slot):
            self.handles.pop(handle.id, None)

    def _spawn_actor(self, slot: NodeSlot) -> RayWorkerHandle:
        actor = RemoteWorker.options(
            num_cpus=0 if slot.gpu else 1,
            num_gpus=1 if slot.gpu else 0,
            max_concurrency=4,  # the message stream, deliveries and file chunks at once
            max_restarts=0,  # the supervisor restarts workers; Ray must not replay a job
            scheduling_strategy=NodeAffinitySchedulingStrategy(slot.node_id, soft=False),
        ).remote(
            self.settings.provider, self.settings.enable_tensorrt, self.settings.cluster_cache_size
        )
        handle = RayWorkerHandle(
            id=f"{slot.ip}/{slot.node_id[:6]}/{slot.index}",
            device_id=slot.number,
            process=ActorProcess(actor),  # type: ignore[arg-type]
            slot=slot,
            files=self.files,
        )
        handle.reader = asyncio.create_task(self._read_actor(handle))
        return handle

    async def _read_actor(self, handle: RayWorkerHandle) -> None:
        process: ActorProcess = handle.process  # type: ignore[assignment]
        stream = handle.actor.messages.options(num_returns="streaming").remote()
        try:
            async for ref in stream:
                message = decode_from_actor(await ref)
                if isinstance(message, NeedBlobs):
                    task = asyncio.create_task(self._send_blobs(handle, message.sha256))
                    self._transfers.add(task)
                    task.add_done_callback(self._transfers.discard)
                elif isinstance(message, Outputs):
                    done = await asyncio.to_thread(write_outputs, handle.current, message)
                    handle.inbox.put_nowait(done)
                elif isinstance(message, ModelsLoaded):
                    handle.loaded = message.loaded
                else:
                    if isinstance(message, Ready):
                        process.pid = message.pid
                    handle.inbox.put_nowait(message)
            process.returncode = 0
        except RayError as exc:
            handle.lost = handle.lost or first_line(exc)
        except Exception as exc:
            log.exception("%s sent an unreadable message", handle.id)
            handle.lost = f"unreadable message: {exc}"
            process.kill()
        handle.state = "dead"
        handle.dead.set()
        handle.inbox.put_nowait(None)
        process.ended.set()

    async def _send_blobs(self, handle: RayWorkerHandle, digests: list[str]) -> None:
        """Stream each file to the node in chunks; the node verifies its sha256."""
        for sha256 in digests:
            path = self.files.paths.get(sha256)
            try:
                if path is None:
                    raise FileNotFoundError(f"no file with sha256 {sha256[:12]} on the head")
                size = path.stat().st_size
                offset = 0
                while True:
                    data = await asyncio.to_thread(read_chunk, path, offset)
                    final = offset + len(data) >= size or not data
                    await handle.actor.put_chunk.remote(sha256, offset, data, final, "")
                    offset += len(data)
                    if final:
                        break
            except OSError as exc:
                reason = f"the head could not read {sha256[:12]}: {exc}"
                with contextlib.suppress(RayError):
                    await handle.actor.put_chunk.remote(sha256, 0, b"", True, reason)
            except RayError:
                return  # the worker is gone; its job is requeued by the supervisor


def connect(address: str) -> None:
    """Join the cluster as its driver (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports leave the network
    if ray.is_initialized():
        return
    ray.init(address=address, namespace="impasto", log_to_driver=False)


def read_chunk(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(CHUNK)


def write_outputs(run: RunJob | None, outputs: Outputs) -> JobDone:
    """Write a node's images where a local worker would have, atomically; the head's JobDone."""
    if run is None or run.job_id != outputs.done.job_id:
        raise RuntimeError(f"images of job {outputs.done.job_id} arrived for no running job")
    folder = Path(run.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for result, data in zip(outputs.done.results, outputs.images, strict=True):
        path = folder / Path(result["path"]).name
        fd, temp = tempfile.mkstemp(
            prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX, dir=folder
        )
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        results.append({**result, "path": str(path)})
    return msgspec.structs.replace(outputs.done, results=results)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
