"""Linux and other XDG desktops: xdg-open, and an XDG autostart .desktop entry."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from impasto_tray.platforms.launch import launch

ENTRY_NAME = "impasto-tray.desktop"


def _launch(command: list[str]) -> None:
    launch(command)


def open_url(url: str) -> None:
    """Open ``url`` in the default browser."""
    _launch(["xdg-open", url])


def open_path(path: str) -> None:
    """Show the folder ``path`` in the file manager."""
    _launch(["xdg-open", path])


# Characters the Desktop Entry spec reserves in Exec=: an argument holding one is quoted.
_RESERVED = re.compile(r"""[\s"'\\><~|&;$*?#()`]""")
# The string escapes of a desktop entry value, which readers undo before they split Exec=.
_STRING_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def exec_argument(argument: str) -> str:
    """``argument`` written for Exec= as the Desktop Entry spec says (not shell quoting: single
    quotes are invalid there): in double quotes when it holds a reserved character, with
    ``"`$\\`` escaped inside; ``%`` doubled; then the value's own string escapes."""
    text = argument.replace("%", "%%")
    if not argument or _RESERVED.search(argument):
        text = '"' + re.sub(r'(["`$\\])', r"\\\1", text) + '"'
    return "".join(_STRING_ESCAPES.get(char, char) for char in text)


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
        f"Exec={' '.join(exec_argument(part) for part in command)}\n"
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
