"""Workers on a Ray cluster, driven by the local supervisor's own job loop.

``RaySupervisor`` keeps one worker actor per GPU (or per configured CPU slot) of every live
node. Each actor is wrapped in a handle the base ``Supervisor`` drives exactly like a worker
process: it claims a job from the SQLite queue, sends it, relays progress, and requeues it
with an attempt counted when the worker is lost. Ray is the transport and the placement; the
queue stays on the head. The daemon never imports Ray: a bridge process is the Ray driver
(``impasto.worker.ray.bridge``), restarted when it dies with a lost head.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from impasto import __version__
from impasto.logs import rotate_if_large
from impasto.settings import Settings
from impasto.worker.protocol import (
    HEADER,
    ModelsLoaded,
    Ready,
)
from impasto.worker.ray.handle import ActorProcess, NodeSlot, RayWorkerHandle, node_slots
from impasto.worker.ray.manifest import FileIndex
from impasto.worker.ray.messages import (
    Acked,
    Chunk,
    Ended,
    NeedBlobs,
    NodeInfo,
    Nodes,
    Out,
    Outputs,
    Spawn,
    ToBridge,
    decode_from_actor,
    decode_from_bridge,
    encode,
)
from impasto.worker.ray.outputs import read_chunk, write_outputs
from impasto.worker.supervisor import (
    MAX_START_FAILURES,
    JobRunner,
    Supervisor,
)

log = logging.getLogger("impasto.supervisor")
# Keys of the cluster's own problems among the supervisor's (worker slots count from 0).
CONNECT_PROBLEM = -1  # cannot reach the cluster
NO_SLOTS_PROBLEM = -2  # reached, but no node offers a worker place
BRIDGE_LOG = "ray-bridge.log"
# Ray keeps trying an unreachable address for minutes: after this long, /health says so.
CONNECT_GRACE_S = 5.0


class RaySupervisor(Supervisor):
    """Worker actors on every live node of a Ray cluster, fed from the head's queue."""

    def __init__(
        self, runner: JobRunner, settings: Settings, models_dir: Path, log_dir: Path | None = None
    ) -> None:
        super().__init__(runner, count=1, log_dir=log_dir)
        self.settings = settings
        self.models_dir = models_dir
        self.files = FileIndex()  # shared: a model is hashed once for every worker
        self._slots: dict[tuple[str, int], NodeSlot] = {}
        self._numbers = itertools.count()
        self._keys = itertools.count()
        self._actors: dict[str, RayWorkerHandle] = {}
        self._bridge: asyncio.subprocess.Process | None = None
        self._acks: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._transfers: set[asyncio.Task[None]] = set()
        self._connected = False  # the bridge running now reached the cluster

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._keep_bridge(), name="ray-bridge"))

    async def stop(self, timeout: float = 10.0) -> None:
        await super().stop(timeout)
        for task in self._transfers:
            task.cancel()
        bridge = self._bridge
        if bridge is not None and bridge.returncode is None:
            if bridge.stdin is not None:
                bridge.stdin.close()  # the bridge shuts its Ray driver down and exits
            # One still trying to connect reads nothing: it has nothing to shut down either.
            try:
                await asyncio.wait_for(bridge.wait(), timeout if self._connected else 0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    bridge.kill()
                await bridge.wait()

    async def to_bridge(self, message: ToBridge) -> None:
        bridge = self._bridge
        if bridge is None or bridge.stdin is None:
            return  # no cluster: the handle ends with the bridge
        self.post(message)
        with contextlib.suppress(ConnectionError):
            await bridge.stdin.drain()

    def post(self, message: ToBridge) -> None:
        bridge = self._bridge
        if bridge is not None and bridge.stdin is not None and not bridge.stdin.is_closing():
            body = encode(message)
            bridge.stdin.write(HEADER.pack(len(body)) + body)

    async def _keep_bridge(self) -> None:
        backoff = 1.0
        while not self._stopping:
            process = await self._start_bridge()
            self._bridge = process
            slow = asyncio.create_task(self._slow_connect())
            try:
                connected = await self._read_bridge(process, slow)
            finally:
                slow.cancel()
            code = await process.wait()
            self._bridge = None
            self._connected = False
            for handle in list(self._actors.values()):
                handle.lost = handle.lost or "the connection to the Ray cluster was lost"
                self._end(handle)
            self._place([])
            if self._stopping:
                return
            if connected:
                backoff = 1.0
                log.warning("the Ray bridge exited (code %s); reconnecting", code)
            else:
                self._problems[CONNECT_PROBLEM] = self._cannot_connect()
                log.error("%s", self._problems[CONNECT_PROBLEM])
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _cannot_connect(self, still: str = "") -> str:
        return (
            f"cannot connect to the Ray cluster at {self.settings.cluster!r}{still}; check the "
            f"address, and that `ray start` runs there (see {self._bridge_log()})"
        )

    async def _slow_connect(self) -> None:
        """A connection not made within CONNECT_GRACE_S shows in /health while Ray tries on."""
        await asyncio.sleep(CONNECT_GRACE_S)
        if CONNECT_PROBLEM not in self._problems:  # a failed try's reason says more
            self._problems[CONNECT_PROBLEM] = self._cannot_connect(" (still trying)")
            log.warning("%s", self._problems[CONNECT_PROBLEM])

    def _bridge_log(self) -> str:
        return str(self.log_dir / BRIDGE_LOG) if self.log_dir else "the daemon's stderr"

    async def _start_bridge(self) -> asyncio.subprocess.Process:
        stderr: Any = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            rotate_if_large(self.log_dir / BRIDGE_LOG)
            stderr = (self.log_dir / BRIDGE_LOG).open("ab")
        command = [sys.executable, "-P", "-m", "impasto.worker.ray.bridge", self.settings.cluster]
        try:
            return await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env={**os.environ, "PYTHONSAFEPATH": "1"},
            )
        finally:
            if stderr is not None:
                stderr.close()

    async def _read_bridge(
        self, process: asyncio.subprocess.Process, slow: asyncio.Task[None]
    ) -> bool:
        """Dispatch the bridge's frames until it exits; True when it reached the cluster."""
        assert process.stdout is not None
        connected = False
        try:
            while True:
                header = await process.stdout.readexactly(HEADER.size)
                (size,) = HEADER.unpack(header)
                message = decode_from_bridge(await process.stdout.readexactly(size))
                if isinstance(message, Nodes):
                    if not connected:
                        connected = self._connected = True
                        slow.cancel()
                        self._problems.pop(CONNECT_PROBLEM, None)
                        log.info("connected to the Ray cluster at %s", self.settings.cluster)
                    self._place(message.nodes)
                elif isinstance(message, Out):
                    handle = self._actors.get(message.key)
                    if handle is not None:
                        await self._on_actor_message(handle, message.body)
                elif isinstance(message, Acked):
                    ack = self._acks.pop((message.key, message.sha256, message.offset), None)
                    if ack is not None and not ack.done():
                        ack.set_result(None)
                elif isinstance(message, Ended):
                    handle = self._actors.get(message.key)
                    if handle is not None:
                        handle.lost = handle.lost or message.lost
                        handle.out_of_memory = handle.out_of_memory or message.out_of_memory
                        self._end(handle)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("the Ray bridge sent an unreadable frame")
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        return connected

    async def _on_actor_message(self, handle: RayWorkerHandle, body: bytes) -> None:
        try:
            message = decode_from_actor(body)
            if isinstance(message, NeedBlobs):
                task = asyncio.create_task(self._send_blobs(handle, message.sha256))
                self._transfers.add(task)
                task.add_done_callback(self._transfers.discard)
            elif isinstance(message, Outputs):
                done = await asyncio.to_thread(write_outputs, handle.current, message)
                handle.inbox.put_nowait(done)
            elif isinstance(message, ModelsLoaded):
                handle.models_reported(message)  # answers a load waiting on it
            else:
                if isinstance(message, Ready):
                    handle.process.pid = message.pid
                handle.inbox.put_nowait(message)
        except Exception as exc:
            log.exception("%s sent an unreadable message", handle.id)
            handle.lost = f"unreadable message: {exc}"
            handle.process.kill()

    def _end(self, handle: RayWorkerHandle) -> None:
        process: ActorProcess = handle.process  # type: ignore[assignment]
        if process.ended.is_set():
            return
        self._actors.pop(handle.key, None)
        for key in [k for k in self._acks if k[0] == handle.key]:
            self._acks.pop(key).cancel()
        process.returncode = None if handle.lost else 0
        handle.state = "dead"
        handle.gone()  # loads still waiting get why
        handle.dead.set()
        handle.inbox.put_nowait(None)
        process.ended.set()

    def _place(self, nodes: list[NodeInfo]) -> None:
        """Start a worker for every new slot; let go of the slots of nodes that left."""
        wanted = {
            key: node
            for node in nodes
            for key in node_slots(node, self.settings.cluster_cpu_workers)
        }
        if nodes and not wanted:
            self._problems[NO_SLOTS_PROBLEM] = self._no_slots(nodes)
            log.warning("%s", self._problems[NO_SLOTS_PROBLEM])
        else:
            self._problems.pop(NO_SLOTS_PROBLEM, None)
        for key, node in wanted.items():
            if key not in self._slots:
                slot = NodeSlot(node.node_id, node.ip, key[1], node.gpus > 0, next(self._numbers))
                self._slots[key] = slot
                name = f"ray-worker-{slot.number}"
                self._tasks.append(asyncio.create_task(self._keep_slot(slot), name=name))
        for key in [k for k in self._slots if k not in wanted]:
            slot = self._slots.pop(key)
            # A node that left takes its start failures along: /health speaks of live nodes.
            self._start_failures.pop(slot.number, None)
            self._problems.pop(slot.number, None)
            if nodes:
                log.warning("Ray node %s (%s) left the cluster", slot.ip, slot.node_id[:8])
            for handle in self._handles_of(slot):
                handle.lost = handle.lost or "the node left the cluster"
                handle.process.kill()

    def _no_slots(self, nodes: list[NodeInfo]) -> str:
        cpu_workers = self.settings.cluster_cpu_workers
        offer = "a GPU" if cpu_workers == 0 else "a GPU or a whole CPU"
        return (
            f"no worker: none of the Ray cluster's {len(nodes)} node(s) has {offer} for "
            f"Impasto (cluster_cpu_workers = {cpu_workers}); queued jobs wait until a node "
            "joins with `ray start --address=HEAD:6379`"
        )

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
            handle.state = "restarting"  # what /system shows until the new worker is up
            log.warning("%s: %s", handle.id, handle.exit_reason())
            if not handle.ready and self._slots.get(slot.key) is slot:
                ray_logs = "see Ray's worker logs on that node (/tmp/ray/session_latest/logs)"
                how = handle.stuck or handle.exit_reason()
                await self._start_failed(slot.number, f"{how}; {ray_logs}")
            backoff = 0.5 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
            await asyncio.sleep(backoff)
        for handle in self._handles_of(slot):
            self.handles.pop(handle.id, None)
        self._start_failures.pop(slot.number, None)
        self._problems.pop(slot.number, None)

    async def _start_failed(self, slot: int, why: str) -> None:
        """Say why a node's worker keeps dying before Ready; the queue waits for other nodes.

        Unlike local workers, queued jobs are not failed: a lost head or node also ends
        workers before Ready, and another node, or this one back, runs the jobs.
        """
        count = self._start_failures.get(slot, 0) + 1
        self._start_failures[slot] = count
        if count >= MAX_START_FAILURES:
            self._problems[slot] = f"a worker cannot start ({count} tries in a row, {why})"
            log.error("%s", self._problems[slot])

    def _spawn_actor(self, slot: NodeSlot) -> RayWorkerHandle:
        key = str(next(self._keys))
        handle = RayWorkerHandle(
            id=f"{slot.ip}/{slot.node_id[:6]}/{slot.index}",
            device_id=slot.number,
            process=ActorProcess(self, key),  # type: ignore[arg-type]
            slot=slot,
            owner=self,
        )
        self._actors[key] = handle
        if self._bridge is None:
            handle.lost = "no connection to the Ray cluster"
            self._end(handle)
            return handle
        settings = self.settings
        self.post(
            Spawn(
                key=key,
                node_id=slot.node_id,
                gpu=slot.gpu,
                provider=settings.provider,
                enable_tensorrt=settings.enable_tensorrt,
                cache_size=settings.cluster_cache_size,
                version=__version__,
            )
        )
        return handle

    async def _send_blobs(self, handle: RayWorkerHandle, digests: list[str]) -> None:
        """Stream each file to the node in acknowledged chunks; the node checks its sha256."""
        loop = asyncio.get_running_loop()
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
                    ack = self._acks[(handle.key, sha256, offset)] = loop.create_future()
                    await self.to_bridge(Chunk(handle.key, sha256, offset, data, final))
                    await ack
                    offset += len(data)
                    if final:
                        break
            except OSError as exc:
                reason = f"the head could not read {sha256[:12]}: {exc}"
                await self.to_bridge(Chunk(handle.key, sha256, 0, b"", True, reason))
