"""The client against daemons that misbehave: one that hangs, one that restarted elsewhere."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from client_fakes import FakeDaemon, event, job, sse_message

from impasto.client import ApiError, AsyncClient, Client, DaemonNotRunning, StreamError, stream
from impasto.client.transport import AsyncFallbackTransport, FallbackTransport


class Handler(BaseHTTPRequestHandler):
    """Health and a processing job; an event stream that says hello, then nothing at all."""

    protocol_version = "HTTP/1.1"
    server: FakeServer

    def do_GET(self) -> None:
        self.server.seen.append(self.headers.get("Authorization"))
        if self.server.token and self.headers.get("Authorization") != f"Bearer {self.server.token}":
            self._json({"status_code": 401, "detail": "a valid token is required"}, 401)
        elif self.path == "/api/v1/health":
            self._json({"status": "ok", "version": self.server.name})
        elif self.path == "/api/v1/generate/job-1":
            self._json(job(status="processing"))
        elif self.path.startswith("/api/v1/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": connected\n\n")
            self.wfile.flush()
            self.server.released.wait(30)  # hung: no event, no keep-alive
        else:
            self._json({"status_code": 404, "detail": "nope"}, 404)

    def _json(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")  # a stopped server keeps none open
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str, token: str = "") -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        self.token = token
        self.seen: list[str | None] = []
        self.released = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    started: list[FakeServer] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[FakeServer], name: str, token: str = "") -> FakeServer:
    server = FakeServer(name, token)
    servers.append(server)
    return server


def announce(folder: Path, server: FakeServer) -> None:
    """Write the discovery file of ``server``, as a daemon does when it starts."""
    body = {"pid": os.getpid(), "url": server.url, "socket": None, "token": server.token}
    (folder / "daemon.json").write_text(json.dumps(body))


def test_wait_drops_a_silent_stream_instead_of_hanging(
    servers: list[FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon sends a keep-alive every 15 s; a stream silent for longer is a hung daemon.
    monkeypatch.setattr(stream, "STREAM_IDLE", 0.2)
    server = start(servers, "hung")
    outcome: list[BaseException] = []

    def follow() -> None:
        try:
            Client(server.url).wait("job-1")
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=follow, daemon=True)
    waiter.start()
    waiter.join(15)
    assert not waiter.is_alive(), "wait() hung on a silent stream"
    assert isinstance(outcome[0], StreamError)


def test_async_wait_drops_a_silent_stream_instead_of_hanging(
    servers: list[FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "STREAM_IDLE", 0.2)
    server = start(servers, "hung")

    async def follow() -> None:
        async with AsyncClient(server.url) as client:
            await asyncio.wait_for(client.wait("job-1"), 15)

    with pytest.raises(StreamError):
        asyncio.run(follow())


def test_stream_reads_wait_no_longer_than_the_deadline_or_the_idle_limit() -> None:
    default = httpx.Timeout(30.0, connect=5.0)
    assert stream.StreamCursor(0, "j").timeout(default).read == stream.STREAM_IDLE
    assert stream.StreamCursor(0, "j", timeout=2.0).timeout(default).read <= 2.0


def test_a_client_follows_its_daemon_restarted_on_another_port(
    servers: list[FakeServer], tmp_path: Path
) -> None:
    first = start(servers, "first", token="one")
    announce(tmp_path, first)
    with Client(runtime_dir=tmp_path) as client:
        assert client.health().version == "first"
        first.stop()
        second = start(servers, "second", token="two")
        announce(tmp_path, second)
        # The same client object, as an editor plugin keeps it: it reads the file again.
        assert client.health().version == "second"
        assert client.endpoint.url == second.url
    assert second.seen == ["Bearer two"]


def test_an_async_client_follows_its_daemon_restarted_on_another_port(
    servers: list[FakeServer], tmp_path: Path
) -> None:
    first = start(servers, "first")
    announce(tmp_path, first)

    async def run() -> list[str]:
        async with AsyncClient(runtime_dir=tmp_path) as client:
            versions = [(await client.health()).version]
            first.stop()
            announce(tmp_path, start(servers, "second"))
            versions.append((await client.health()).version)
            return versions

    assert asyncio.run(run()) == ["first", "second"]


def test_a_client_reads_a_new_token_after_a_401(servers: list[FakeServer], tmp_path: Path) -> None:
    server = start(servers, "daemon", token="old")
    announce(tmp_path, server)
    with Client(runtime_dir=tmp_path) as client:
        assert client.health().status == "ok"
        server.token = "new"  # restarted with a fresh random token, on the same port
        announce(tmp_path, server)
        assert client.health().status == "ok"
    assert server.seen == ["Bearer old", "Bearer old", "Bearer new"]


def test_a_client_given_its_address_keeps_it(servers: list[FakeServer], tmp_path: Path) -> None:
    first = start(servers, "first")
    announce(tmp_path, first)
    with Client(first.url) as client:
        first.stop()
        announce(tmp_path, start(servers, "second"))
        with pytest.raises(DaemonNotRunning, match=first.url):
            client.health()


def test_the_socket_is_tried_again_after_it_refused() -> None:
    # A daemon restarted while the client lived listens on its socket again: use it.
    socket_answers = iter([httpx.ConnectError("refused"), None])
    used: list[str] = []

    def over_socket(request: httpx.Request) -> httpx.Response:
        failure = next(socket_answers)
        if failure is not None:
            raise failure
        used.append("socket")
        return httpx.Response(200)

    def over_tcp(request: httpx.Request) -> httpx.Response:
        used.append("tcp")
        return httpx.Response(200)

    transport = FallbackTransport(httpx.MockTransport(over_socket), httpx.MockTransport(over_tcp))
    with httpx.Client(transport=transport, base_url="http://impasto") as http:
        http.get("/")
        http.get("/")
    assert used == ["tcp", "socket"]

    socket_answers = iter([httpx.ConnectError("refused"), None])
    used.clear()
    async_transport = AsyncFallbackTransport(
        httpx.MockTransport(over_socket), httpx.MockTransport(over_tcp)
    )

    async def run() -> None:
        async with httpx.AsyncClient(transport=async_transport, base_url="http://impasto") as h:
            await h.get("/")
            await h.get("/")

    asyncio.run(run())
    assert used == ["tcp", "socket"]


def test_not_running_names_the_socket_and_the_url_it_tried(tmp_path: Path) -> None:
    stale = tmp_path / "impasto.sock"
    stale.touch()
    body = {"pid": os.getpid(), "url": "http://127.0.0.1:9", "socket": str(stale)}
    (tmp_path / "daemon.json").write_text(json.dumps(body))
    started = time.monotonic()
    with Client(runtime_dir=tmp_path) as client, pytest.raises(DaemonNotRunning) as caught:
        client.health()
    assert f"{stale} or http://127.0.0.1:9" in str(caught.value)
    assert time.monotonic() - started < 10


def test_events_outlive_a_daemon_restart(
    daemon: FakeDaemon, async_daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "RECONNECT_DELAY", 0.01)
    for fake in (daemon, async_daemon):
        fake.streams += [
            [sse_message(event(7, "queued")), httpx.RemoteProtocolError("daemon stopped")],
            httpx.ConnectError("refused"),  # while it restarts
            httpx.ConnectError("refused"),
            [b": connected\n\n", sse_message(event(8, "started"))],
        ]
    events = Client(transport=daemon.transport()).events(since=0)
    assert [next(events).seq, next(events).seq] == [7, 8]

    async def follow() -> list[int]:
        seqs = []
        async with AsyncClient(transport=async_daemon.transport()) as client:
            async for item in client.events(since=0):
                seqs.append(item.seq)
                if len(seqs) == 2:
                    break
        return seqs

    assert asyncio.run(follow()) == [7, 8]
    for fake in (daemon, async_daemon):
        # Each try resumes after the last event seen.
        assert [p["since"] for p in fake.stream_params] == ["0", "7", "7", "7"]


def test_events_give_up_on_a_daemon_that_stays_away(
    daemon: FakeDaemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "RECONNECT_DELAY", 0.01)
    monkeypatch.setattr(stream, "RESTART_GRACE", 0.1)
    daemon.streams += [httpx.ConnectError("refused")] * 1000
    started = time.monotonic()
    with pytest.raises(DaemonNotRunning):
        next(Client(transport=daemon.transport()).events())
    assert 0.1 <= time.monotonic() - started < 5


def _too_many_streams() -> httpx.Response:
    detail = "too many open event streams (4, the max_event_streams setting)"
    return httpx.Response(503, json={"detail": detail}, headers={"Retry-After": "0"})


def test_a_stream_refused_for_want_of_room_is_asked_again(
    daemon: FakeDaemon, async_daemon: FakeDaemon
) -> None:
    """A daemon at its max_event_streams answers 503 with Retry-After: events() and wait() ask
    again after it (wait() reads the job's status meanwhile) instead of raising."""
    for fake in (daemon, async_daemon):
        fake.jobs["job-1"] = job(status="processing")
        fake.streams += [
            _too_many_streams(),
            _too_many_streams(),
            [sse_message(event(3, "progress"))],
        ]
    events = Client(transport=daemon.transport()).events(since=0)
    assert next(events).seq == 3

    async def follow() -> int:
        async with AsyncClient(transport=async_daemon.transport()) as client:
            async for item in client.events(since=0):
                return item.seq
        raise AssertionError("no event")

    assert asyncio.run(follow()) == 3
    for fake in (daemon, async_daemon):
        assert len(fake.stream_params) == 3

    def finish() -> bytes:
        daemon.jobs["job-1"] = job(status="completed")
        return sse_message(event(9, "completed"))

    daemon.streams += [_too_many_streams(), [finish]]
    assert Client(transport=daemon.transport()).wait("job-1", timeout=5).status == "completed"


def test_other_stream_refusals_are_raised(daemon: FakeDaemon) -> None:
    daemon.streams.append(httpx.Response(403, json={"detail": "forbidden origin"}))
    with pytest.raises(ApiError) as caught:
        next(Client(transport=daemon.transport()).events(since=0))
    assert caught.value.status == 403
