"""wait() and events(): following the SSE stream, heartbeats, reconnects with since."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from client_fakes import FakeDaemon, event, job, sse_message

from impasto.client import AsyncClient, Client, Event, StreamError
from impasto.client.stream import MAX_DROPS

RESULT = {"index": 0, "url": "/api/v1/images/job-1/0", "seed": 1, "width": 64, "height": 64}


def finish(daemon: FakeDaemon) -> Callable[[], bytes]:
    """A script step completing the job in the fake and sending the event that says so."""

    def step() -> bytes:
        daemon.jobs["job-1"] = job(status="completed", results=[RESULT], progress=1.0)
        return sse_message(event(5, "completed", results=[RESULT]))

    return step


def test_wait_reports_progress_and_returns_final_status(daemon: FakeDaemon) -> None:
    daemon.jobs["job-1"] = job(status="processing")
    daemon.streams.append(
        [
            b": heartbeat\n\n",
            sse_message(event(2, "started")),
            sse_message(event(3, "queue", job_id=None, paused=False)),
            sse_message(event(4, "progress", step=1, total=4, progress=0.25)),
            sse_message(event(4, "progress", job_id="other-job", step=3, total=4, progress=0.75)),
            finish(daemon),
        ]
    )
    seen: list[Event] = []
    final = Client(transport=daemon.transport()).wait("job-1", on_progress=seen.append)
    assert final.status == "completed" and final.results[0].seed == 1
    # Only this job's events reach the callback; the terminal one ends the wait instead.
    assert [(e.type, e.data.get("step")) for e in seen] == [("started", None), ("progress", 1)]
    assert daemon.stream_params == [{"since": "0", "job": "job-1"}]


def test_wait_reconnects_after_a_drop_with_the_last_seq(daemon: FakeDaemon) -> None:
    daemon.jobs["job-1"] = job(status="processing")
    daemon.streams.append(
        [
            sse_message(event(11, "progress", step=1, total=4, progress=0.25)),
            httpx.RemoteProtocolError("peer closed connection"),
        ]
    )
    daemon.streams.append(
        [
            sse_message(event(12, "progress", step=2, total=4, progress=0.5)),
            finish(daemon),
        ]
    )
    steps: list[int] = []
    final = Client(transport=daemon.transport()).wait(
        "job-1", on_progress=lambda e: steps.append(e.data["step"])
    )
    assert final.status == "completed"
    assert steps == [1, 2]
    assert [p["since"] for p in daemon.stream_params] == ["0", "11"]


def test_wait_sees_a_job_that_ended_while_disconnected(daemon: FakeDaemon) -> None:
    daemon.jobs["job-1"] = job(status="processing")

    def ends_behind_our_back() -> Exception:
        daemon.jobs["job-1"] = job(status="failed", error="worker killed by signal 9")
        return httpx.ReadError("connection reset")

    daemon.streams.append([sse_message(event(3, "started")), ends_behind_our_back])
    final = Client(transport=daemon.transport()).wait("job-1")
    assert (final.status, final.error) == ("failed", "worker killed by signal 9")
    assert len(daemon.stream_params) == 1


def test_wait_on_a_finished_job_opens_no_stream(daemon: FakeDaemon) -> None:
    daemon.jobs["job-1"] = job(status="cancelled")
    assert Client(transport=daemon.transport()).wait("job-1").status == "cancelled"
    assert daemon.stream_params == []


def test_wait_times_out_while_only_heartbeats_arrive(daemon: FakeDaemon) -> None:
    daemon.jobs["job-1"] = job(status="processing")

    def heartbeat() -> bytes:
        time.sleep(0.01)
        return b": heartbeat\n\n"

    daemon.streams.append([heartbeat] * 500)  # five seconds of heartbeats, no events
    with pytest.raises(TimeoutError):
        Client(transport=daemon.transport()).wait("job-1", timeout=0.05)


def test_events_resume_after_drops_and_give_up_on_endless_ones(daemon: FakeDaemon) -> None:
    daemon.streams.append([sse_message(event(1, "queued")), httpx.ReadError("reset")])
    daemon.streams.append([sse_message(event(2, "started"))])  # closed cleanly: reconnect too
    client = Client(transport=daemon.transport())
    stream = client.events(since=0)
    assert [next(stream).seq, next(stream).seq] == [1, 2]
    # No scripts left: every further connection drops at once, without an event.
    with pytest.raises(StreamError, match="keeps dropping"):
        next(stream)
    assert [p.get("since") for p in daemon.stream_params[:3]] == ["0", "1", "2"]
    # The close after seq 2 starts the run of drops; the one past MAX_DROPS gives up.
    assert len(daemon.stream_params) == 2 + MAX_DROPS


def test_events_without_since_sends_no_since(daemon: FakeDaemon) -> None:
    daemon.streams.append([sse_message(event(8, "queue", job_id=None, paused=True))])
    first = next(Client(transport=daemon.transport()).events(job="job-1"))
    assert (first.type, first.data) == ("queue", {"paused": True})
    assert daemon.stream_params == [{"job": "job-1"}]


def test_stream_error_status_raises_api_error(daemon: FakeDaemon) -> None:
    daemon.routes[("GET", "/api/v1/events")] = httpx.Response(
        401, json={"status_code": 401, "detail": "missing token"}
    )
    with pytest.raises(Exception, match="missing token"):
        next(Client(transport=daemon.transport()).events())


def test_async_wait_reconnects_and_awaits_the_callback(async_daemon: FakeDaemon) -> None:
    async_daemon.jobs["job-1"] = job(status="queued")
    async_daemon.streams.append(
        [
            sse_message(event(4, "started")),
            httpx.RemoteProtocolError("dropped"),
        ]
    )
    async_daemon.streams.append(
        [
            sse_message(event(6, "progress", step=3, total=4, progress=0.75)),
            finish(async_daemon),
        ]
    )
    seen: list[str] = []

    async def on_progress(e: Event) -> None:
        await asyncio.sleep(0)
        seen.append(e.type)

    async def scenario() -> str:
        async with AsyncClient(transport=async_daemon.transport()) as client:
            return (await client.wait("job-1", on_progress=on_progress)).status

    assert asyncio.run(scenario()) == "completed"
    assert seen == ["started", "progress"]
    assert [p["since"] for p in async_daemon.stream_params] == ["0", "4"]


def test_async_events_and_history(async_daemon: FakeDaemon) -> None:
    async_daemon.streams.append([sse_message(event(1, "queued")), sse_message(event(2, "started"))])
    async_daemon.routes[("GET", "/api/v1/history")] = httpx.Response(
        200, json={"items": [job("a", "completed")], "next_cursor": None}
    )

    async def scenario() -> tuple[list[int], list[str]]:
        async with AsyncClient(transport=async_daemon.transport()) as client:
            seqs = []
            async for item in client.events(since=0):
                seqs.append(item.seq)
                if len(seqs) == 2:
                    break
            pages = [page async for page in client.history()]
        return seqs, [i.id for page in pages for i in page.items]

    assert asyncio.run(scenario()) == ([1, 2], ["a"])
