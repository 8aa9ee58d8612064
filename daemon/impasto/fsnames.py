"""Names from requests meeting the file system: which can be one entry of a folder, and whether
a path exists without the OS's own errors for names it cannot hold.

``Path.exists()`` and ``Path.is_dir()`` answer False for a missing file but raise for a name
too long for the file system (ENAMETOOLONG) and for a NUL byte, which a request can carry, so
every lookup by a requested name goes through here.
"""

from __future__ import annotations

from pathlib import Path

NAME_MAX = 255  # bytes in one file name on Linux and macOS (NTFS: 255 UTF-16 units)


# Names Windows gives to devices in every folder (``CON``, ``nul.txt``): opening one opens the
# device, not a file in the folder.
WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{port}{n}" for port in ("com", "lpt") for n in [*"123456789", "¹", "²", "³"]}
)
# Characters no entry may hold on some system: the separators, NUL and other control
# characters, and ':' (on Windows ``D:evil`` is a path on drive D, ``x:y`` a hidden stream of
# file x), with the rest Windows refuses in a name.
_FORBIDDEN = frozenset('/\\:*?"<>|') | {chr(c) for c in range(32)} | {"\x7f"}


def _portable(name: str) -> bool:
    """One entry of a folder on every system: nothing Windows reads as a drive, a stream, a
    device or another name, short enough, not ``.`` or ``..``."""
    return (
        bool(name)
        and name not in (".", "..")
        and not any(c in _FORBIDDEN for c in name)
        and not name.endswith((".", " "))
        and name.split(".", 1)[0].rstrip(" ").lower() not in WINDOWS_DEVICES
        and len(name.encode("utf-8", "surrogatepass")) <= NAME_MAX
    )


def plain_name(name: str) -> bool:
    """Whether ``name`` can only mean one entry directly inside a folder, on every system the
    daemon runs on: not empty, no separator, drive or stream (``:``), not hidden or a dot
    entry, no control character, not a Windows device name, not ending in a dot or a space
    (Windows drops those: ``x.`` is ``x``), short enough for a file name."""
    return _portable(name) and not name.startswith(".")


def inside_path(path: str) -> bool:
    """Whether ``path`` (``/``-separated, from a listing or an archive) can only mean a place
    under the folder it is joined to, on every system: relative, each part a portable name
    (hidden files such as ``.gitattributes`` are allowed)."""
    return bool(path) and not path.startswith("/") and all(map(_portable, path.split("/")))


def exists(path: Path) -> bool:
    """``path.exists()``, False for a path the OS cannot hold (a name too long, a NUL)."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False
