"""Event streams, I/O-free: the /events call, its SSE bytes as Events, and where a dropped
stream resumes (the sync and async clients drive them)."""

from __future__ import annotations

import time

import httpx
import msgspec

from impasto.client.core import Call
from impasto.client.errors import ApiError, DaemonNotRunning, StreamError
from impasto.client.sse import SSEDecoder
from impasto.client.types import TERMINAL_STATUSES, Event

JOB_END_EVENTS = TERMINAL_STATUSES | {"deleted"}
# Drops in a row, without a single event between them, before wait()/events() give up.
MAX_DROPS = 5
# The daemon writes a keep-alive every 15 s on an idle stream: one silent for longer than this
# comes from a hung daemon (or a dead link), and is dropped instead of waited on for ever.
STREAM_IDLE = 45.0
# Streams that keep dropping are reconnected every RECONNECT_DELAY seconds (the daemon's SSE
# "retry" hint), and events() outlives a daemon restart: it tries again as often for up to
# RESTART_GRACE seconds before DaemonNotRunning.
RECONNECT_DELAY = 1.0
RESTART_GRACE = 60.0
# A daemon with no room for another stream (503) is asked again after its Retry-After, at most
# this many seconds later.
MAX_BUSY_WAIT = 30.0


def events(since: int | None, job: str | None) -> Call[None]:
    """GET /events as a Server-Sent Events stream (read it with ``EventReader``)."""
    params: dict[str, str | int] = {}
    if since is not None:
        params["since"] = since
    if job:
        params["job"] = job
    return Call(
        "GET", "/events", lambda _r: None, params=params, headers={"Accept": "text/event-stream"}
    )


class EventReader:
    """Turns the bytes of one SSE connection into Events."""

    def __init__(self) -> None:
        self._decoder = SSEDecoder()

    def feed(self, chunk: bytes) -> list[Event]:
        """Decode a chunk; messages that are not events (e.g. keep-alives with data) are skipped."""
        found = []
        for message in self._decoder.feed(chunk):
            try:
                found.append(msgspec.json.decode(message.data, type=Event))
            except msgspec.MsgspecError:
                continue
        return found


class StreamCursor:
    """Where an event stream resumes after a drop, and when to give up or time out."""

    def __init__(self, since: int | None, job: str | None, timeout: float | None = None) -> None:
        self.since = since
        self.job = job
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.drops = 0
        self.gone_since: float | None = None

    def call(self) -> Call[None]:
        """The request that resumes the stream after the last event seen."""
        return events(self.since, self.job)

    def timeout(self, default: httpx.Timeout) -> httpx.Timeout:
        """Stream timeouts: a read waits for the next event or keep-alive up to STREAM_IDLE
        seconds, and no longer than the deadline allows."""
        remaining = self.remaining()
        read = STREAM_IDLE if remaining is None else min(remaining, STREAM_IDLE)
        return httpx.Timeout(default.connect, read=read, write=default.write, pool=None)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None without one)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def check_deadline(self) -> None:
        """Raise TimeoutError once the deadline has passed."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise TimeoutError("timed out waiting for the job to finish")

    def seen(self, event: Event) -> None:
        """Record an event: resume after it next time, and the stream is healthy again."""
        self.since = event.seq
        self.drops = 0

    def connected(self) -> None:
        """The daemon answered: it is back, if it was gone."""
        self.gone_since = None

    def gone(self, exc: DaemonNotRunning) -> float:
        """Nothing answered a reconnect: the seconds to wait before the next try, or ``exc``
        once the daemon has been gone for RESTART_GRACE seconds."""
        now = time.monotonic()
        if self.gone_since is None:
            self.gone_since = now
        if now - self.gone_since >= RESTART_GRACE:
            raise exc
        return RECONNECT_DELAY

    def dropped(self, exc: Exception) -> float:
        """Count a dropped connection; too many in a row raise StreamError. Returns the seconds
        to wait before reconnecting: none after one drop (a stream ended for falling behind),
        RECONNECT_DELAY after more (a stopping daemon ends each new stream at once)."""
        self.drops += 1
        if self.drops > MAX_DROPS:
            raise StreamError(f"the event stream keeps dropping: {exc}") from exc
        return 0.0 if self.drops == 1 else self._within_deadline(RECONNECT_DELAY)

    def busy(self, exc: ApiError) -> float:
        """The daemon refused the stream: the seconds to wait before asking again when it had
        no room for another (503, too many open streams; its Retry-After, within the
        deadline); any other refusal is raised."""
        if exc.status != 503:
            raise exc
        wait = min(exc.retry_after or RECONNECT_DELAY, MAX_BUSY_WAIT)
        return self._within_deadline(wait)

    def _within_deadline(self, delay: float) -> float:
        remaining = self.remaining()
        return delay if remaining is None else min(delay, remaining)


def ends_job(event: Event, job_id: str) -> bool:
    """True for the event that finishes ``job_id``."""
    return event.job_id == job_id and event.type in JOB_END_EVENTS
