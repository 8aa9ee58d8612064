"""Find the running daemon: explicit arguments first, else the discovery file it writes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from impasto.client.errors import DaemonNotRunning, SettingsError

TOKEN_ENV = "IMPASTO_TOKEN"


class DiscoveryFile(msgspec.Struct, kw_only=True):
    """Contents of <runtime_dir>/daemon.json, written by the daemon while it runs."""

    pid: int
    url: str
    socket: str | None = None
    token: str = ""
    # False when only a socket was given: there is no TCP address to fall back to.
    tcp_fallback: bool = True
    version: str = ""


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach the daemon: TCP URL, optional Unix socket, token."""

    url: str
    socket: str | None = None
    token: str = ""
    # False when only a socket was given: there is no TCP address to fall back to.
    tcp_fallback: bool = True


def default_runtime_dir() -> Path:
    """The runtime dir of the effective settings (IMPASTO_RUNTIME_DIR overrides it)."""
    # Imported here so that a client with an explicit endpoint never reads config files.
    from impasto.paths import resolve_paths
    from impasto.settings import load_settings

    try:
        settings = load_settings().settings
    except ValueError as exc:  # a config file that is not TOML, a bad IMPASTO_* value
        raise SettingsError(f"cannot tell where the daemon is: {exc}") from None
    return resolve_paths(settings).runtime_dir


def read_discovery_file(path: Path) -> DiscoveryFile:
    """Parse a discovery file; DaemonNotRunning when it is missing, unreadable or stale."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DaemonNotRunning(f"no discovery file at {path}") from None
    except OSError as exc:
        raise DaemonNotRunning(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = msgspec.json.decode(raw, type=DiscoveryFile)
    except msgspec.DecodeError as exc:
        raise DaemonNotRunning(f"unreadable discovery file {path}: {exc}") from None
    if not _pid_alive(info.pid):
        raise DaemonNotRunning(f"stale discovery file {path}: process {info.pid} is gone")
    return info


def _pid_alive(pid: int) -> bool:
    # On Windows os.kill(pid, 0) would terminate the process, so trust the file there.
    if sys.platform == "win32" or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_endpoint(
    base_url: str | None = None,
    socket: str | os.PathLike[str] | None = None,
    token: str | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> Endpoint:
    """Explicit url/socket win; otherwise read daemon.json and prefer its socket if it exists."""
    if base_url is not None or socket is not None:
        return Endpoint(
            url=(base_url or "http://localhost").rstrip("/"),
            socket=os.fspath(socket) if socket is not None else None,
            token=token if token is not None else os.environ.get(TOKEN_ENV, ""),
            tcp_fallback=base_url is not None,
        )
    folder = Path(runtime_dir) if runtime_dir is not None else default_runtime_dir()
    info = read_discovery_file(folder / "daemon.json")
    # A socket path whose file is gone (deleted, other machine's path) is useless: use TCP.
    usable_socket = info.socket if info.socket and Path(info.socket).exists() else None
    return Endpoint(
        url=info.url.rstrip("/"),
        socket=usable_socket,
        token=token if token is not None else info.token,
    )
