"""``python -m tests.loop_guard serve``: ``impasto serve`` that records blocking work done on the
event loop's thread, for tests/integration/test_event_loop.py.

Recorded, with the stack that did it: decoding or encoding an image (``PIL.Image.open``,
``Image.save``), and opening or listing anything under the data folder or the bundled models
(Python's audit events: ``open``, listing, removing and renaming). Each record is one JSON line
appended to the file named by ``IMPASTO_TEST_LOOP_GUARD``.
"""

from __future__ import annotations

import asyncio
import json
import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from PIL import Image

LOG = Path(os.environ["IMPASTO_TEST_LOOP_GUARD"])
FILE_EVENTS = (
    "open",
    "os.listdir",
    "os.scandir",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "shutil.rmtree",
)
_busy = threading.local()


def _watched() -> tuple[str, ...]:
    from impasto.resources import bundled_models_dir

    folders = (os.environ["IMPASTO_DATA_DIR"], str(bundled_models_dir()))
    return tuple({form for f in folders for form in (f, os.path.realpath(f))})


def _on_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _record(what: str) -> None:
    if getattr(_busy, "on", False):
        return
    _busy.on = True
    try:
        stack = [
            f"{frame.filename.rsplit('/impasto/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in traceback.extract_stack()[:-2]
            if "/impasto/" in frame.filename
        ]
        with LOG.open("a") as out:
            out.write(json.dumps({"what": what, "stack": stack[-6:]}) + "\n")
    finally:
        _busy.on = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event not in FILE_EVENTS or getattr(_busy, "on", False) or not args:
        return
    path = args[0]
    if not isinstance(path, (str, bytes, os.PathLike)):
        return
    text = os.fsdecode(path)
    if text.startswith(WATCHED) and _on_loop():
        _record(f"{event} {text}")


def _guard(name: str, original: Any) -> Any:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if _on_loop():
            _record(name)
        return original(*args, **kwargs)

    return guarded


WATCHED: tuple[str, ...] = ()

if __name__ == "__main__":
    WATCHED = _watched()
    Image.open = _guard("PIL.Image.open", Image.open)  # type: ignore[assignment]
    Image.Image.save = _guard("PIL.Image.save", Image.Image.save)  # type: ignore[method-assign]
    sys.addaudithook(_audit)
    sys.argv = ["impasto", *sys.argv[1:]]
    runpy.run_module("impasto", run_name="__main__", alter_sys=True)
