"""Start an opener (xdg-open, open, a chosen command) and reap it when it exits."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any


def launch(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Run ``command`` detached and silent; a thread waits for it, so that no zombie is left.

    The opener outlives the click and its chatter is not ours. Without the wait, each one
    stayed a zombie under the tray until the next child process happened to reap it.
    """
    options: dict[str, Any] = {}
    if sys.platform != "win32":
        options["start_new_session"] = True  # Ctrl+C in the tray's terminal is not its
    process = subprocess.Popen(
        list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **options
    )
    threading.Thread(target=process.wait, name="impasto-tray-opener", daemon=True).start()
    return process
