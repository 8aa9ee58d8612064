"""The Ray driver, in a process of its own: ``python -m impasto.worker.ray.bridge ADDRESS``.

Ray ends a driver's process when it loses the cluster's head for good, so the daemon does not
join the cluster itself: this bridge does, and relays frames (``impasto.worker.protocol``'s
length-prefixed framing) between the daemon's pipes and the worker actors. When the head
restarts, the bridge dies, the daemon requeues the jobs of every worker it had and starts a
new bridge, which reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import sys
import threading
from typing import IO, Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports leave the network

import ray
from ray.exceptions import OutOfMemoryError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from impasto.worker.protocol import HEADER, read_frame
from impasto.worker.ray.actor import WorkerActor
from impasto.worker.ray.messages import (
    Acked,
    Chunk,
    Deliver,
    Ended,
    FromBridge,
    Kill,
    NodeInfo,
    Nodes,
    Out,
    Spawn,
    decode_to_bridge,
    encode,
)

log = logging.getLogger("impasto.ray-bridge")
NODES_EVERY_S = 1.0  # how often the node list is read: a joining node gets workers this fast
RemoteWorker: Any = ray.remote(WorkerActor)


class Writer:
    """Frames to the daemon from one thread, so no task blocks the loop on a full pipe."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._queue: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._write, name="bridge-out", daemon=True).start()

    def send(self, message: FromBridge) -> None:
        body = encode(message)
        self._queue.put(HEADER.pack(len(body)) + body)

    def _write(self) -> None:
        while True:
            frame = self._queue.get()
            try:
                self._out.write(frame)
                self._out.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the daemon is gone: so is its driver


class Bridge:
    def __init__(self, out: Writer) -> None:
        self.out = out
        self.actors: dict[str, Any] = {}
        self.feeds: dict[str, asyncio.Queue[Deliver | Chunk]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.refused: dict[str, str] = {}  # actors killed for refusing a message, and why

    async def run(self, inp: IO[bytes]) -> None:
        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue[bytes | None] = asyncio.Queue()

        def read() -> None:
            while True:
                body = read_frame(inp)
                loop.call_soon_threadsafe(inbox.put_nowait, body)
                if body is None:
                    return

        threading.Thread(target=read, name="bridge-in", daemon=True).start()
        self._start(self._watch_nodes())
        while (body := await inbox.get()) is not None:
            message = decode_to_bridge(body)
            if isinstance(message, Spawn):
                self._spawn(message)
            elif isinstance(message, Kill):
                actor = self.actors.get(message.key)
                if actor is not None:
                    with contextlib.suppress(Exception):
                        ray.kill(actor, no_restart=True)
            elif message.key in self.feeds:
                self.feeds[message.key].put_nowait(message)
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)

    def _start(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _spawn(self, message: Spawn) -> None:
        try:
            actor = RemoteWorker.options(
                num_cpus=0 if message.gpu else 1,
                num_gpus=1 if message.gpu else 0,
                max_concurrency=4,  # the message stream, deliveries and file chunks at once
                max_restarts=0,  # the daemon restarts workers; Ray must not replay a job
                scheduling_strategy=NodeAffinitySchedulingStrategy(message.node_id, soft=False),
            ).remote(
                message.provider,
                message.enable_tensorrt,
                message.cache_size,
                head_version=message.version,
            )
        except Exception as exc:
            self.out.send(Ended(message.key, f"could not start the actor: {exc}"))
            return
        self.actors[message.key] = actor
        self.feeds[message.key] = asyncio.Queue()
        self._start(self._stream(message.key, actor))
        self._start(self._feed(message.key, actor, self.feeds[message.key]))

    async def _stream(self, key: str, actor: Any) -> None:
        lost, out_of_memory = "", False
        try:
            async for ref in actor.messages.options(num_returns="streaming").remote():
                self.out.send(Out(key, await ref))
        except Exception as exc:  # any end but its own must reach the daemon, or it waits on
            lost = reason(exc)
            # Ray's memory monitor stopped the actor (its node was over the kill threshold).
            out_of_memory = isinstance(exc, OutOfMemoryError)
        lost = self.refused.pop(key, lost)
        self.actors.pop(key, None)
        feed = self.feeds.pop(key, None)
        if feed is not None:
            feed.put_nowait(Deliver(key, b""))  # ends the feed task
        self.out.send(Ended(key, lost, out_of_memory))

    async def _feed(self, key: str, actor: Any, feed: asyncio.Queue[Deliver | Chunk]) -> None:
        while True:
            message = await feed.get()
            if isinstance(message, Deliver) and not message.body:
                return
            try:
                if isinstance(message, Deliver):
                    await actor.deliver.remote(message.body)
                else:
                    m = message
                    await actor.put_chunk.remote(m.sha256, m.offset, m.data, m.final, m.error)
                    self.out.send(Acked(key, m.sha256, m.offset))
            except RayError as exc:
                if not isinstance(exc, RayTaskError):
                    continue  # a lost actor shows as its stream's end
                self._refused(key, actor, exc)
                return
            except Exception as exc:
                self._refused(key, actor, exc)
                return

    def _refused(self, key: str, actor: Any, exc: Exception) -> None:
        """The actor raised on a message (a bug, a broken node): a worker that dropped one
        would leave its job waiting, so it goes, and the daemon requeues the job."""
        self.refused[key] = f"it refused a message: {reason(exc)}"
        log.error("worker actor %s: %s", key, self.refused[key])
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)

    async def _watch_nodes(self) -> None:
        last: list[NodeInfo] | None = None
        while True:
            try:
                nodes = await asyncio.to_thread(ray.nodes)
            except Exception as exc:
                log.warning("cannot list the cluster's nodes (%s)", exc)
            else:
                alive = sorted(
                    (
                        NodeInfo(
                            node_id=n["NodeID"],
                            ip=n["NodeManagerAddress"],
                            gpus=int((n.get("Resources") or {}).get("GPU", 0)),
                            cpus=float((n.get("Resources") or {}).get("CPU", 0)),
                        )
                        for n in nodes
                        if n.get("Alive")
                    ),
                    key=lambda n: n.node_id,
                )
                if alive != last:
                    self.out.send(Nodes(alive))
                    last = alive
            await asyncio.sleep(NODES_EVERY_S)


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def reason(exc: BaseException) -> str:
    """One line of why an actor ended or refused a call. Where the actor itself raised (in
    its start, or in a call), the error it raised: the last line of Ray's report, after the
    traceback, not Ray's header."""
    lines = [line.strip() for line in ANSI.sub("", str(exc)).strip().splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and getattr(exc, "actor_init_failed", False):
        return f"the worker failed to start: {lines[-1]}"[:300]
    if len(lines) > 1 and isinstance(exc, RayTaskError):
        return lines[-1][:300]
    return lines[0][:300]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m impasto.worker.ray.bridge ADDRESS", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="ray bridge: %(message)s")
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # Ray's own prints must never corrupt the frame stream
    try:
        ray.init(address=args[0], namespace="impasto", log_to_driver=False)
    except Exception as exc:
        print(f"cannot connect to the Ray cluster at {args[0]!r}: {exc}", file=sys.stderr)
        return 3
    bridge = Bridge(Writer(out))
    asyncio.run(bridge.run(sys.stdin.buffer))
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
