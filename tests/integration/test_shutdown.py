"""Stopping the daemon (SIGTERM, or Ctrl+C's SIGINT to the whole process group) is clean."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


ENDING = """
import atexit, logging, logging.handlers, sys, threading, time
from pathlib import Path
from impasto.process_end import end_process

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))
# Held in memory until logging shuts down.
held = logging.handlers.MemoryHandler(1000, target=logging.FileHandler(out / "log"))
logging.getLogger().addHandler(held)


def late() -> None:
    time.sleep(0.3)
    (out / "thread").write_text("done")


threading.Thread(target=late).start()
logging.getLogger().warning("logged")
sys.stdout.write("not flushed yet")
end_process(3)
"""


def test_the_process_ends_after_its_threads_and_streams_without_finalizing(
    tmp_path: Path,
) -> None:
    """``impasto serve`` ends with end_process: granian's native threads finish in the
    background, and one that takes the GIL while the interpreter finalizes aborts the process."""
    done = subprocess.run(
        [sys.executable, "-c", ENDING, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # stdout buffers
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout == "not flushed yet"  # the streams are flushed
    assert (tmp_path / "thread").read_text() == "done"  # Python threads are joined
    assert (tmp_path / "log").read_text() == "logged\n"
    assert not (tmp_path / "atexit").exists()  # no finalization: atexit never runs
