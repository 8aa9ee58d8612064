"""macOS: `open`, and a LaunchAgent in ~/Library/LaunchAgents for start at login."""

from __future__ import annotations

import plistlib
from collections.abc import Sequence
from pathlib import Path

from impasto_tray.platforms.launch import launch

LABEL = "org.impasto.tray"


def open_url(url: str) -> None:
    """Open ``url`` in the default browser."""
    launch(["open", url])


def open_path(path: str) -> None:
    """Show the folder ``path`` in Finder."""
    launch(["open", path])


def agent_file() -> Path:
    """~/Library/LaunchAgents/org.impasto.tray.plist."""
    return Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def agent_plist(command: Sequence[str]) -> bytes:
    """The LaunchAgent that runs ``command`` once at login."""
    return plistlib.dumps(
        {
            "Label": LABEL,
            "ProgramArguments": list(command),
            "RunAtLoad": True,
            # The tray is the user's to quit: launchd must not bring it back.
            "KeepAlive": False,
            "ProcessType": "Interactive",
        }
    )


def autostart_enabled() -> bool:
    """Whether the LaunchAgent exists."""
    return agent_file().is_file()


def set_autostart(enabled: bool, command: Sequence[str]) -> None:
    """Write or delete the LaunchAgent (launchd reads it at the next login)."""
    path = agent_file()
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(agent_plist(command))
