"""Windows: os.startfile, and a value under HKCU\\...\\Run for start at login."""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
from collections.abc import Sequence
from typing import Any

RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
VALUE_NAME = "Impasto"


def _winreg() -> Any:
    # Imported by name: the module exists only on Windows, where type checkers may not run.
    return importlib.import_module("winreg")


def _startfile(target: str) -> None:
    startfile: Any = getattr(os, "startfile")  # noqa: B009 - Windows only
    startfile(target)


def open_url(url: str) -> None:
    """Open ``url`` in the default browser."""
    _startfile(url)


def open_path(path: str) -> None:
    """Show the folder ``path`` in Explorer."""
    _startfile(path)


def run_value(command: Sequence[str]) -> str:
    """The Run key's command line, quoted the way CreateProcess parses it."""
    return subprocess.list2cmdline(list(command))


def autostart_enabled() -> bool:
    """Whether the Run value exists."""
    winreg = _winreg()
    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            winreg.QueryValueEx(key, VALUE_NAME)
    except OSError:
        return False
    return True


def set_autostart(enabled: bool, command: Sequence[str]) -> None:
    """Write or delete the Run value."""
    winreg = _winreg()
    with winreg.CreateKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
        if enabled:
            winreg.SetValueEx(key, VALUE_NAME, 0, winreg.REG_SZ, run_value(command))
        else:
            with contextlib.suppress(FileNotFoundError):
                winreg.DeleteValue(key, VALUE_NAME)
