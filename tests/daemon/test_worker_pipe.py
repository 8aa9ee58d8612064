"""A worker whose daemon was killed (its pipe closed) ends with one line in its log, not a
BrokenPipeError traceback that reads like a crash of its own."""

from __future__ import annotations

import subprocess
import sys

SENDS_TO_NOBODY = """
import os, sys
from impasto.worker.main import Channel
from impasto.worker.protocol import Ready
read_end, write_end = os.pipe()
os.close(read_end)  # the daemon is gone: nobody reads the worker's frames
reader, _ = os.pipe()
channel = Channel(os.fdopen(reader, "rb"), os.fdopen(write_end, "wb"))
channel.send(Ready(pid=os.getpid(), provider={}))
print("still running after the send", file=sys.stderr)
sys.exit(3)
"""


def test_a_send_to_a_daemon_that_is_gone_ends_the_worker_quietly() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SENDS_TO_NOBODY], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "the daemon closed the pipe; this worker exits" in done.stderr
    assert "Traceback" not in done.stderr and "still running" not in done.stderr
