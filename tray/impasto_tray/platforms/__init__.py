"""What differs per OS: opening a URL or a folder, and the start-at-login entry."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol


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


def current() -> ModuleType:
    """The module for this OS (a module satisfies Platform through its functions)."""
    if sys.platform == "win32":
        from impasto_tray.platforms import windows

        return windows
    if sys.platform == "darwin":
        from impasto_tray.platforms import macos

        return macos
    from impasto_tray.platforms import linux

    return linux
