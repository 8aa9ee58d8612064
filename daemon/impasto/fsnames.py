"""Names from requests meeting the file system: which can be one entry of a folder, and whether
a path exists without the OS's own errors for names it cannot hold.

``Path.exists()`` and ``Path.is_dir()`` answer False for a missing file but raise for a name
too long for the file system (ENAMETOOLONG) and for a NUL byte, which a request can carry, so
every lookup by a requested name goes through here.
"""

from __future__ import annotations

from pathlib import Path

NAME_MAX = 255  # bytes in one file name on Linux and macOS (NTFS: 255 UTF-16 units)


def plain_name(name: str) -> bool:
    """Whether ``name`` can only mean one entry directly inside a folder: not empty, no
    separator, not hidden or a dot entry, no NUL, short enough for a file name."""
    return (
        bool(name)
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
        and not name.startswith(".")
        and len(name.encode("utf-8", "surrogatepass")) <= NAME_MAX
    )


def exists(path: Path) -> bool:
    """``path.exists()``, False for a path the OS cannot hold (a name too long, a NUL)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
