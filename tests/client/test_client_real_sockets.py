"""The client over real connections: a Unix socket, and TCP after a stale socket refuses."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import socketserver
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from client_fakes import event, job, sse_message

from impasto.client import AsyncClient, Client

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="Unix sockets")


class FakeDaemonHandler(BaseHTTPRequestHandler):
    """Health, a job that is processing, and an event stream that completes it."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/api/v1/health":
            self._json({"status": "ok", "version": "fake"})
        elif self.path == "/api/v1/generate/job-1":
            done = any(p.startswith("/api/v1/events") for p, _ in self.seen)
            self._json(job(status="completed" if done else "processing"))
        elif self.path.startswith("/api/v1/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for message in (
                b": hello\n\n",
                sse_message(event(1, "progress", step=1, total=2, progress=0.5)),
                sse_message(event(2, "completed", results=[])),
            ):
                self.wfile.write(message)
                self.wfile.flush()
        else:
            self._json({"status_code": 404, "detail": "nope"}, 404)

    def _json(self, body: object, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "unix"  # AF_UNIX peers have no (host, port)

    def log_message(self, format: str, *args: object) -> None:
        pass


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def handler_class() -> type[FakeDaemonHandler]:
    return type("Handler", (FakeDaemonHandler,), {"seen": []})


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~104 bytes; pytest's tmp_path can be longer.
    folder = Path(tempfile.mkdtemp(prefix="imp-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def serve(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def test_sync_and_async_clients_over_a_unix_socket(short_dir: Path) -> None:
    handler = handler_class()
    path = short_dir / "impasto.sock"
    server = UnixHTTPServer(str(path), handler)
    serve(server)
    try:
        # The discovery file names a TCP port nothing listens on: success proves the socket.
        discovery = {
            "pid": os.getpid(),
            "url": "http://127.0.0.1:9",
            "socket": str(path),
            "token": "tk",
        }
        (short_dir / "daemon.json").write_text(json.dumps(discovery))
        with Client(runtime_dir=short_dir) as client:
            assert client.health().version == "fake"
            steps: list[int] = []
            final = client.wait("job-1", on_progress=lambda e: steps.append(e.data["step"]))

        async def over_async() -> str:
            async with AsyncClient(socket=path) as aclient:
                return (await aclient.health()).version

        assert asyncio.run(over_async()) == "fake"
    finally:
        server.shutdown()
        server.server_close()
    assert final.status == "completed" and steps == [1]
    assert ("/api/v1/health", "Bearer tk") in handler.seen
    assert ("/api/v1/events?since=0&job=job-1", "Bearer tk") in handler.seen


def test_stale_socket_falls_back_to_tcp(short_dir: Path) -> None:
    handler = handler_class()
    server = HTTPServer(("127.0.0.1", 0), handler)
    serve(server)
    stale = short_dir / "impasto.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))  # a socket file that nobody listens on, as after a crash
    leftover.close()
    try:
        port = server.server_address[1]
        discovery = {"pid": os.getpid(), "url": f"http://127.0.0.1:{port}", "socket": str(stale)}
        (short_dir / "daemon.json").write_text(json.dumps(discovery))
        with Client(runtime_dir=short_dir) as client:
            assert client.endpoint.socket == str(stale)
            assert client.health().status == "ok"
            assert client.health().status == "ok"
    finally:
        server.shutdown()
        server.server_close()
    assert [p for p, _ in handler.seen] == ["/api/v1/health", "/api/v1/health"]
