"""A WebSocket that the daemon ends says why in its close frame, so a client can tell "start
again from the last event you got" from a normal end: 1013 (try again later) when the
subscriber fell behind, 1001 (going away) when the daemon stops. A plain 1000,
which the websockets library reports as a clean end, told a client to stop listening."""

from __future__ import annotations

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect, unix_connect

from tests.harness import Daemon

BURST = 6000  # events published while the subscriber does not read


def test_a_subscriber_that_falls_behind_is_closed_with_1013_and_where_to_resume(
    impasto_daemon: Daemon,
) -> None:
    # The Unix socket's buffer is small and fixed (loopback TCP would buffer megabytes), and
    # max_queue=1 stops the client library from reading ahead for us.
    with unix_connect(str(impasto_daemon.socket), "ws://impasto/api/v1/ws", max_queue=1) as ws:
        time.sleep(0.5)  # subscribed
        with impasto_daemon.client() as client:
            for i in range(BURST):
                client.post(f"/api/v1/queue/{'pause' if i % 2 == 0 else 'resume'}")
        seen: list[int] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                seen.append(json.loads(ws.recv(timeout=30))["seq"])
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1013, closed.value.rcvd
    assert 0 < len(seen) < BURST  # cut short, not delivered in full
    assert closed.value.rcvd.reason == "fell behind; reconnect with since=<the last seq you got>"

    url = f"ws://impasto/api/v1/ws?since={seen[-1]}"
    with unix_connect(str(impasto_daemon.socket), url) as again:
        first = json.loads(again.recv(timeout=30))
    assert first["seq"] == seen[-1] + 1  # nothing lost in between


def test_a_stopping_daemon_closes_its_websockets_with_1001(
    daemon_factory: type[Daemon], tmp_path
) -> None:
    daemon = daemon_factory(tmp_path).start()
    with connect(daemon.url.replace("http", "ws") + "/api/v1/ws") as ws:
        time.sleep(0.3)  # subscribed
        assert daemon.stop() == 0
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "the daemon is stopping")
