"""A subscriber that stops reading is closed, then replays what it missed (issue #20, item 5).

The reader sits on the Unix socket, whose buffer is small and fixed (TCP on loopback would
buffer megabytes first): once the daemon's queue for it overflows, its stream must end so that
an EventSource reconnects with ``Last-Event-ID`` and gets every event it missed, in order.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

from tests.harness import Daemon

BURST = 6000  # events published while the subscriber does not read


def _open_stream(daemon: Daemon, headers: str = "") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(daemon.socket))
    sock.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: impasto\r\n{headers}\r\n".encode())
    return sock


def _read_events(
    sock: socket.socket, until: float, stop_at: str | None = None
) -> tuple[list[dict[str, Any]], bool]:
    """Events read before ``until`` (or once ``stop_at`` shows); True when the stream ended."""
    data = b""
    sock.settimeout(1.0)
    ended = False
    while time.monotonic() < until and not ended:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        data += chunk
        ended = not chunk or data.endswith(b"\r\n0\r\n\r\n")  # EOF or the last chunk
        if stop_at is not None and stop_at.encode() in data:
            break
    _, _, body = data.partition(b"\r\n\r\n")
    events = [json.loads(line) for line in re.findall(rb"^data: (.*?)\r?$", body, re.MULTILINE)]
    return events, ended


def test_overflowing_subscriber_is_closed_and_replays_what_it_missed(
    impasto_daemon: Daemon,
) -> None:
    slow = _open_stream(impasto_daemon)
    time.sleep(0.5)  # subscribed
    with impasto_daemon.client() as client:
        for i in range(BURST):
            client.post(f"/api/v1/queue/{'pause' if i % 2 == 0 else 'resume'}")
        marker = client.post(
            "/api/v1/generate",
            json={"prompt": "after the burst", "steps": 1, "width": 64, "height": 64},
        ).json()["id"]
    with slow:
        seen, ended = _read_events(slow, time.monotonic() + 30)
    assert ended, "the overflowing stream was left open"
    assert seen and len(seen) < BURST  # it was cut short, not delivered in full
    last_id = seen[-1]["seq"]

    with _open_stream(impasto_daemon, f"Last-Event-ID: {last_id}\r\n") as again:
        replayed, _ = _read_events(again, time.monotonic() + 60, stop_at=marker)
    ids = [e["seq"] for e in seen + replayed]
    assert ids == list(range(ids[0], ids[-1] + 1)), "events were lost or repeated"
    assert any(e["type"] == "queued" and e["job_id"] == marker for e in replayed)
    assert sum(e["type"] == "queue" for e in seen + replayed) == BURST
