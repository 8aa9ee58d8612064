"""What differs per OS: opening a URL or a folder, and the start-at-login entry."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Protocol

from impasto_tray.platforms.launch import launch

# A command line that opens URLs and folders instead of the desktop's default (xdg-open,
# open, os.startfile); the URL or folder is appended as its last argument.
OPENER_VARIABLE = "IMPASTO_TRAY_OPENER"


class Platform(Protocol):
    """The per-OS functions; each of linux, macos and windows is one."""

    def open_url(self, url: str) -> None:
        """Open ``url`` in the default browser."""

    def open_path(self, path: str) -> None:
        """Show the folder ``path`` in the file manager."""

    def autostart_enabled(self) -> bool:
        """Whether the tray starts at login."""

    def set_autostart(self, enabled: bool, command: Sequence[str]) -> None:
        """Add (running ``command``) or remove the start-at-login entry."""


class CommandOpener:
    """A platform whose URLs and folders open with a chosen command; autostart as ``base``."""

    def __init__(self, base: Any, command: Sequence[str]) -> None:
        self.base = base
        self.command = list(command)

    def _run(self, target: str) -> None:
        launch([*self.command, target])

    def open_url(self, url: str) -> None:
        """Run the command on ``url``."""
        self._run(url)

    def open_path(self, path: str) -> None:
        """Run the command on ``path``."""
        self._run(path)

    def autostart_enabled(self) -> bool:
        """As the OS's platform."""
        return bool(self.base.autostart_enabled())

    def set_autostart(self, enabled: bool, command: Sequence[str]) -> None:
        """As the OS's platform."""
        self.base.set_autostart(enabled, command)


def current(env: Mapping[str, str] = os.environ) -> Any:
    """This OS's platform, opening with ``IMPASTO_TRAY_OPENER`` when that is set (a
    ValueError naming the variable when it is not a command line)."""
    base = os_module()
    opener = env.get(OPENER_VARIABLE, "").strip()
    if not opener:
        return base
    try:
        return CommandOpener(base, shlex.split(opener))
    except ValueError as exc:  # shlex's own words ("No closing quotation") name nothing
        raise ValueError(f"{OPENER_VARIABLE}={opener!r} is not a command line: {exc}") from exc


def os_module() -> ModuleType:
    """The module for this OS (a module satisfies Platform through its functions)."""
    if sys.platform == "win32":
        from impasto_tray.platforms import windows

        return windows
    if sys.platform == "darwin":
        from impasto_tray.platforms import macos

        return macos
    from impasto_tray.platforms import linux

    return linux
