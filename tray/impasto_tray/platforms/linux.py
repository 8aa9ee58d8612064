"""Linux and other XDG desktops: xdg-open, and an XDG autostart .desktop entry."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

ENTRY_NAME = "impasto-tray.desktop"


def _launch(command: list[str]) -> None:
    # Detached and silent: the opener outlives the click and its chatter is not ours.
    subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def open_url(url: str) -> None:
    """Open ``url`` in the default browser."""
    _launch(["xdg-open", url])


def open_path(path: str) -> None:
    """Show the folder ``path`` in the file manager."""
    _launch(["xdg-open", path])


def autostart_file() -> Path:
    """$XDG_CONFIG_HOME/autostart/impasto-tray.desktop."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / ENTRY_NAME


def desktop_entry(command: Sequence[str]) -> str:
    """The text of the autostart entry running ``command``."""
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Name=Impasto\n"
        "Comment=Local Stable Diffusion daemon tray icon\n"
        f"Exec={shlex.join(command)}\n"
        "Icon=impasto\n"
        "Terminal=false\n"
        "X-GNOME-Autostart-enabled=true\n"
    )


def autostart_enabled() -> bool:
    """Whether the autostart entry exists."""
    return autostart_file().is_file()


def set_autostart(enabled: bool, command: Sequence[str]) -> None:
    """Write or delete the autostart entry."""
    path = autostart_file()
    if not enabled:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(desktop_entry(command))
