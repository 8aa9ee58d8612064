"""How ``impasto serve``'s process ends once the daemon has stopped: without the interpreter's
finalization, which native threads can turn into an abort."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from typing import NoReturn

# Seconds end_process waits for the daemon's own non-daemon threads.
THREADS_GRACE = 10.0


def end_process(code: int) -> NoReturn:
    """Exit with ``code`` once the daemon has stopped, without the interpreter's finalization.

    granian's native threads end after its servers have (its blocking pool wakes when the
    runtime is dropped and takes the GIL back to return); one that takes it while the
    interpreter finalizes is ended by CPython with ``pthread_exit``, which granian's
    ``panic = "abort"`` build turns into SIGABRT: a clean stop that exits -6 now and then. Every
    resource is closed by then, so: join the Python threads a normal exit would wait for (up to
    ``THREADS_GRACE`` seconds in all), flush the logs and the standard streams, and leave with
    ``os._exit``.
    """
    current = threading.current_thread()
    deadline = time.monotonic() + THREADS_GRACE
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    os._exit(code)
