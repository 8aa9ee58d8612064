"""An editor's client follows events while the real daemon stops and starts on another port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from impasto.client import Client, Event, stream
from tests.harness import Daemon, free_port


def test_a_following_client_neither_holds_the_daemon_nor_loses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "RESTART_GRACE", 30.0)  # the follower ends soon after the test
    monkeypatch.setattr(stream, "RECONNECT_DELAY", 1.0)  # the real one, not the scripted tests'
    # TCP only: over the socket a restart is found without reading the discovery file again.
    daemon = Daemon(tmp_path, socket="false").start()
    seen: list[Event] = []
    failures: list[BaseException] = []
    follower = Client(runtime_dir=daemon.runtime_dir)

    def follow() -> None:
        try:
            for item in follower.events(since=0):
                seen.append(item)
        except BaseException as exc:
            failures.append(exc)

    threading.Thread(target=follow, daemon=True).start()
    try:
        with Client(runtime_dir=daemon.runtime_dir) as client:
            client.pause()
        wait_for(lambda: any(e.type == "queue" for e in seen))
        before = seen[-1].seq

        started = time.monotonic()
        # The follower reconnects at once when its stream ends: a daemon that served that
        # stream while stopping would wait on it for ever (and be killed after 30 s here).
        assert daemon.stop(timeout=30) == 0
        assert time.monotonic() - started < 20

        daemon.port = free_port()  # as a daemon on port 0 gets another one
        daemon.start()
        with Client(runtime_dir=daemon.runtime_dir) as client:
            client.resume()
        wait_for(lambda: seen[-1].seq > before or failures)
        assert failures == []
        # The same client object found the new port through the discovery file, and resumed
        # after the last event it had seen.
        assert follower.endpoint.url == daemon.url
        resumed = seen[-1]
        assert (resumed.type, resumed.data) == ("queue", {"paused": False})
    finally:
        daemon.stop()
        follower.close()


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out: {condition}")
