"""The live event stream: persisted for replay by sequence number, fanned out to subscribers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from impasto.wire import EventType


@dataclass(frozen=True)
class LiveEvent:
    """One event as clients see it; ``ephemeral`` holds data that is never replayed (previews)."""

    seq: int
    type: str
    job_id: str | None
    time: float
    data: dict[str, Any]
    ephemeral: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "job_id": self.job_id,
            "time": iso_time(self.time),
            "data": {**self.data, **self.ephemeral},
        }


def iso_time(ts: float | None) -> str | None:
    """Unix seconds as an ISO 8601 UTC string."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class EventStore(Protocol):
    """What the bus needs of the persistent event log (impasto.store.events.EventLog)."""

    def append(self, type: str, job_id: str | None, data: dict[str, Any]) -> Any: ...

    def since(self, seq: int, *, job_id: str | None = None, limit: int = 1000) -> list[Any]: ...

    def trim(self, keep: int = 10000) -> Any: ...

    def last_seq(self) -> int: ...

    def lost_after(self, seq: int, *, job_id: str | None = None) -> int: ...


# Why the bus ended a stream: its subscriber fell a queue's length behind (it reconnects with
# ``since``), or the daemon is stopping.
CloseReason = Literal["overflow", "shutdown"]


class Subscription:
    """A subscriber's bounded queue; overflowing closes it so the client reconnects with since."""

    def __init__(self, job_id: str | None, maxsize: int = 2000) -> None:
        self.job_id = job_id
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize)
        self.closed = False
        self.reason: CloseReason = "overflow"

    def offer(self, event: LiveEvent) -> None:
        if self.closed or (self.job_id and event.job_id != self.job_id):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.close("overflow")

    def close(self, reason: CloseReason) -> None:
        """End the stream: what is still queued is dropped (the client replays it by seq)."""
        self.closed, self.reason = True, reason
        while not self.queue.empty():  # a full queue would have no room for the end marker
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class EventBus:
    """Publishes events in order; all calls happen on the daemon's event loop."""

    TRIM_EVERY = 500
    REPLAY_PAGE = 1000

    def __init__(self, store: EventStore, keep: int = 20000) -> None:
        self._store = store
        self._keep = keep
        self._subscribers: set[Subscription] = set()
        self._published = 0
        # Set by close_all: a stream opened while the daemon stops (a client reconnecting at
        # once) ends at once too, or the server would wait on it for ever.
        self._closed = False

    def publish(
        self,
        type: EventType,
        job_id: str | None,
        data: dict[str, Any],
        ephemeral: dict[str, Any] | None = None,
    ) -> LiveEvent:
        stored = self._store.append(type, job_id, data)
        event = LiveEvent(stored.seq, type, job_id, stored.time, data, ephemeral or {})
        for sub in list(self._subscribers):
            sub.offer(event)
        self._published += 1
        if self._published % self.TRIM_EVERY == 0:
            self._store.trim(self._keep)
        return event

    async def catch_up(self, until: float) -> None:
        """Yield to the streams, then wait while one is over half full, up to the monotonic
        time ``until``: a burst of events (a queue clear cancelling thousands of jobs) reaches
        the clients that keep reading instead of ending their streams as fallen behind; a
        stream that does not read still overflows once ``until`` has passed."""
        await asyncio.sleep(0)
        while time.monotonic() < until and any(
            not sub.closed and sub.queue.qsize() > sub.queue.maxsize // 2
            for sub in self._subscribers
        ):
            await asyncio.sleep(0.005)

    async def replay(self, since: int, job_id: str | None = None) -> AsyncIterator[LiveEvent]:
        """Stored events after ``since``, read a page at a time off the event loop.

        Previews are not stored, so they are not replayed.
        """
        cursor = since
        while True:
            batch = await asyncio.to_thread(
                self._store.since, cursor, job_id=job_id, limit=self.REPLAY_PAGE
            )
            for e in batch:
                yield LiveEvent(e.seq, e.type, e.job_id, e.time, e.data)
            if len(batch) < self.REPLAY_PAGE:
                return
            cursor = batch[-1].seq

    async def stream(
        self,
        since: int | None = None,
        job_id: str | None = None,
        heartbeat: float | None = None,
        on_close: Callable[[CloseReason], None] | None = None,
    ) -> AsyncIterator[LiveEvent | None]:
        """Replay what came after ``since``, then follow live events until the subscriber closes.

        With ``heartbeat``, yields None after that many idle seconds so transports can ping;
        ``on_close`` hears why the bus ended the stream (a WebSocket's close code says it).
        """
        sub = Subscription(job_id)
        if self._closed:
            sub.close("shutdown")
        self._subscribers.add(sub)
        if since is not None:
            # A cursor past the newest event (a reset database, a typo) follows live events
            # from now on instead of waiting for a seq that may never come.
            since = min(since, await asyncio.to_thread(self._store.last_seq))
        try:
            last = since or 0
            if since is not None:
                gap = await self._gap(since, job_id)
                if gap is not None:
                    last = gap.seq
                    yield gap
                async for event in self.replay(since, job_id):
                    last = event.seq
                    yield event
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), heartbeat)
                except TimeoutError:
                    yield None
                    continue
                if item is None:
                    if on_close is not None:
                        on_close(sub.reason)
                    return
                if item.seq > last:
                    last = item.seq
                    yield item
        finally:
            self._subscribers.discard(sub)

    async def _gap(self, since: int, job_id: str | None) -> LiveEvent | None:
        """A ``gap`` event when events after ``since`` were trimmed (the log keeps the newest
        ``keep``): the client missed them for good and re-reads the state it follows. Its seq
        is the newest lost one, so a client resuming from it misses nothing more."""
        lost = await asyncio.to_thread(self._store.lost_after, since, job_id=job_id)
        if not lost:
            return None
        data = {"since": since, "lost": lost}
        return LiveEvent(since + lost, "gap", job_id, time.time(), data)

    def close_all(self) -> None:
        """End every stream, and each one opened from now on (daemon shutdown)."""
        self._closed = True
        for sub in list(self._subscribers):
            sub.close("shutdown")

    async def drain(self, timeout: float = 1.0) -> None:
        """After :meth:`close_all`, give the streams up to ``timeout`` seconds to end, so each
        client gets its stream's end (a WebSocket its close frame) before the server stops."""
        deadline = time.monotonic() + timeout
        while self._subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the transports send what the ended streams left them

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
