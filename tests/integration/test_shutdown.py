"""Stopping the daemon (SIGTERM, or Ctrl+C's SIGINT to the whole process group) is clean."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.harness import Daemon

# What an unclean exit leaves in a log: an interpreter abort, or a traceback of any kind.
UNCLEAN = ("Fatal Python error", "Traceback (most recent call last)", "KeyboardInterrupt")


def logs(daemon: Daemon) -> dict[str, str]:
    found = {path.name: path.read_text(errors="replace") for path in daemon.log_dir.glob("*.log")}
    found["terminal"] = daemon.output()
    return found


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT to the group"])
def test_the_daemon_and_its_worker_stop_without_errors(tmp_path: Path, how: str) -> None:
    daemon = Daemon(tmp_path)
    daemon.new_session = True
    daemon.start()
    try:
        daemon.wait_worker_ready()
        code = daemon.stop(signal.SIGTERM) if how == "SIGTERM" else daemon.interrupt()
    finally:
        daemon.kill()
    assert code == 0, daemon.output()
    found = logs(daemon)
    assert "worker-0.log" in found, sorted(found)
    for name, text in found.items():
        for mark in UNCLEAN:
            assert mark not in text, f"{name} after {how}:\n{text}"
    assert "Impasto stopped." in found["terminal"]
