"""Idle connections, stalled request bodies and open event streams cannot starve ordinary
requests (issue #20, item 3).

A bounded loopback load: 300 connections that never send a byte and 150 open SSE streams,
then ordinary requests must still be answered. The request timeouts only detect a stall
(minutes, as before the fix); they are not speed claims (bench/connections.py measures).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets.exceptions
import websockets.sync.client as ws_client

from tests.harness import TINY, Daemon

IDLE = 300
STREAMS = 150


def _open_sse(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    yield held
    for sock in held:
        sock.close()


def test_idle_connections_and_open_streams_do_not_starve_requests(
    daemon_factory: type[Daemon], tmp_path, sockets: list[socket.socket]
) -> None:
    # A long header timeout: the idle connections stay open for the whole test.
    daemon = daemon_factory(tmp_path, header_timeout=60).start()
    sockets += [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(IDLE)]
    for _ in range(STREAMS):
        sock, head = _open_sse(daemon.port)
        sockets.append(sock)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
    with httpx.Client(base_url=daemon.url, timeout=15) as client:
        for _ in range(5):
            assert client.get("/api/v1/health").status_code == 200
            assert client.get("/api/v1/queue").status_code == 200
        job = client.post("/api/v1/generate", json={"prompt": "under load", **TINY})
        assert job.status_code == 202
        assert client.get("/").status_code == 200
    with daemon.socket_client() as over_socket:
        assert over_socket.get("/api/v1/health").status_code == 200


def test_idle_connections_beyond_the_limit_are_closed_by_the_header_timeout(
    daemon_factory: type[Daemon], tmp_path, sockets: list[socket.socket]
) -> None:
    daemon = daemon_factory(tmp_path, max_connections=20, header_timeout=2).start()
    sockets += [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(40)]
    # Every permit is held by a silent client; the request waits in the backlog until the
    # header timeout closes them, instead of for as long as they stay connected.
    with httpx.Client(base_url=daemon.url, timeout=30) as client:
        assert client.get("/api/v1/health").status_code == 200
    sockets[0].settimeout(10)
    assert sockets[0].recv(100) == b""  # the server hung up on the silent client


def test_event_streams_beyond_their_limit_get_503_then_a_slot_frees(
    daemon_factory: type[Daemon], tmp_path, sockets: list[socket.socket]
) -> None:
    daemon = daemon_factory(tmp_path, max_event_streams=3).start()
    for _ in range(3):
        sock, head = _open_sse(daemon.port)
        sockets.append(sock)
        assert head.startswith(b"HTTP/1.1 200")
    with httpx.Client(base_url=daemon.url, timeout=15) as client:
        refused = client.get("/api/v1/events")
        assert refused.status_code == 503
        assert int(refused.headers["retry-after"]) > 0
        assert "max_event_streams" in refused.json()["detail"]
        assert client.get("/api/v1/queue").status_code == 200  # ordinary requests still pass
    url = f"ws://127.0.0.1:{daemon.port}/api/v1/ws"
    with (
        pytest.raises(websockets.exceptions.ConnectionClosed) as closed,
        ws_client.connect(url, open_timeout=10) as conn,
    ):
        conn.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
    sockets.pop().close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # the daemon notices the hang-up on its next write
        sock, head = _open_sse(daemon.port)
        if head.startswith(b"HTTP/1.1 200"):
            sockets.append(sock)
            break
        sock.close()
        time.sleep(0.5)
    else:
        pytest.fail("a closed stream never gave its slot back")


def _stall_mid_body(
    port: int, path: str = "/api/v1/generate/plan", media: str = "application/json"
) -> socket.socket:
    """A POST whose headers announce 100 bytes of body, of which it sends 11, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {media}\r\n"
        "Content-Length: 100\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"prompt": ')
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _server_errors(daemon: Daemon) -> list[str]:
    log = (daemon.log_dir / "daemon.log").read_text(errors="replace")
    return [line for line in log.splitlines() if " ERROR " in line or "Traceback" in line]


def test_bodies_that_stall_are_answered_408_and_give_their_connection_back(
    daemon_factory: type[Daemon], tmp_path, sockets: list[socket.socket]
) -> None:
    """Twice as many stalled bodies as connection slots: each is cut at body_timeout, so an
    ordinary request still gets through (it waited for ever before)."""
    daemon = daemon_factory(tmp_path, max_connections=4, body_timeout=1).start()
    sockets += [_stall_mid_body(daemon.port) for _ in range(8)]
    with httpx.Client(base_url=daemon.url, timeout=30) as client:
        assert client.get("/api/v1/health").status_code == 200
    for sock in sockets:
        head, _, body = _read_to_close(sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head[:100]
        assert b"connection: close" in head.lower()
        answer = json.loads(body)
        assert answer["status_code"] == 408 and "body_timeout" in answer["detail"], answer
    assert _server_errors(daemon) == []


# A route of each body kind: native JSON, a multipart upload, a compatible API's JSON.
FORMS = (
    ("/api/v1/generate/plan", "application/json"),
    ("/api/v1/images", "multipart/form-data; boundary=x"),
    ("/sdapi/v1/txt2img", "application/json"),
)


def test_a_client_that_hangs_up_mid_body_is_no_server_error(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path, log_level="debug").start()
    for path, media in FORMS:
        sock = _stall_mid_body(daemon.port, path, media)
        time.sleep(0.3)  # the route is reading the body when the client goes
        sock.close()
    said = "the client disconnected before sending the whole body"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lines = (daemon.log_dir / "daemon.log").read_text(errors="replace").splitlines()
        if len([line for line in lines if said in line]) >= 3:
            break
        time.sleep(0.2)
    assert [line.split(" ", 3)[2:] for line in lines if said in line] == [
        ["DEBUG", f"impasto.api: POST {path}: {said}"] for path, _ in FORMS
    ]
    assert _server_errors(daemon) == []
    with httpx.Client(base_url=daemon.url, timeout=15) as client:
        assert client.get("/api/v1/health").status_code == 200
