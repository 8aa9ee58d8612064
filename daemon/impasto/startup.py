"""What ``impasto serve`` refuses before it starts anything, and the folder locks it holds.

Each refusal is a StartupError whose message says why and what to do; ``serve`` prints it on
one line and exits with status 1. The settings are checked before any folder is made or any
port is bound; the folder locks are taken once the folders exist.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

from impasto import discovery
from impasto.api.security import LOOPBACK_NAMES
from impasto.engine.providers import resolve_name
from impasto.engine.types import EngineError
from impasto.instance_lock import InstanceLock
from impasto.logs import configure_daemon_logging
from impasto.paths import FolderError, Paths
from impasto.resources import compiled
from impasto.settings import Settings


class StartupError(Exception):
    """The daemon cannot start; the message says why and what to do."""


def check_settings(settings: Settings) -> None:
    """Every refusal that needs only the settings, in the order a user would fix them."""
    check_bind(settings)
    check_cluster(settings)
    check_provider(settings)


def check_bind(settings: Settings) -> None:
    """Binding beyond loopback without a token would expose the machine: refuse.

    A token of whitespace, or with whitespace around it, is refused too: clients strip it,
    so it could never match, and a blank one looks set while protecting nothing.
    """
    if settings.token != settings.token.strip():
        raise StartupError(
            "the token is blank or starts or ends with whitespace: set IMPASTO_TOKEN (or token "
            "in config.toml) to visible characters, for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if settings.host.lower() not in LOOPBACK_NAMES and not settings.token:
        raise StartupError(
            f"refusing to listen on {settings.host} without a token: set IMPASTO_TOKEN "
            "(or token in config.toml) or bind to localhost"
        )


def check_cluster(settings: Settings) -> None:
    """A ``cluster`` setting this install cannot serve is refused before anything starts.

    Ray workers need the ``cluster`` extra; the single binary leaves Ray out altogether.
    """
    if not settings.cluster:
        return
    try:
        import impasto.worker.ray  # noqa: F401  (checks that Ray is installed; imports no Ray)
    except ImportError as exc:
        why = (
            "the single binary runs local workers only: Ray workers need the Python package, "
            "pip install 'impasto[cluster]' (docs/cluster.md)"
            if compiled()
            else str(exc)
        )
        raise StartupError(
            f"{why} (cluster = {settings.cluster!r}; unset it to run local workers)"
        ) from None


def check_provider(settings: Settings) -> None:
    """An execution provider name no ONNX Runtime knows is refused before anything starts
    (the worker would fail on it at every start)."""
    if settings.provider.strip().lower() == "auto":
        return
    try:
        resolve_name(settings.provider)
    except EngineError as exc:
        raise StartupError(f"provider: {exc}, or auto") from None


def check_port(host: str, port: int) -> None:
    """The HTTP port is free to listen on (0 picks a free one later), or refuse to start: the
    server would otherwise fail in the background after the daemon said where it runs."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if sys.platform != "win32":  # as servers bind: a closed connection's TIME_WAIT is fine
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise StartupError(
                    f"cannot listen on {host}: no network interface of this machine has that "
                    "address; set host (--host, IMPASTO_HOST) to one of its addresses, or "
                    "localhost"
                ) from None
            why = {
                errno.EADDRINUSE: "is in use by another program",
                errno.EACCES: "needs privileges this user lacks (ports below 1024 do)",
            }.get(exc.errno or 0, f"cannot be listened on ({exc.strerror})")
            raise StartupError(
                f"port {port} on {host} {why}: choose another with --port N (IMPASTO_PORT, or "
                "port in config.toml), or --port 0 for any free port"
            ) from None


# The longest Unix socket path the OS takes (sockaddr_un.sun_path, less its closing NUL).
SOCKET_PATH_MAX = 107 if sys.platform.startswith("linux") else 103


def check_socket_path(path: Path) -> None:
    """A Unix socket path the OS can bind, or refuse to start (the listener would fail in the
    background, after the daemon said where it runs)."""
    size = len(os.fsencode(path))
    if size > SOCKET_PATH_MAX:
        raise StartupError(
            f"the API socket path {path} is {size} bytes, longer than the {SOCKET_PATH_MAX} "
            "this OS allows: set socket_path (IMPASTO_SOCKET_PATH) or runtime_dir to a shorter "
            "path, or socket = false to serve over TCP only"
        )


def claim_instance(paths: Paths) -> list[InstanceLock]:
    """Lock the data folder and the runtime folder for this daemon's life, or refuse to start.

    Holding both locks proves no other daemon uses either folder, so a discovery file or
    socket found there is left by a crashed daemon and is removed.
    """
    folders = dict.fromkeys([paths.data_dir.resolve(), paths.runtime_dir.resolve()])
    held: list[InstanceLock] = []
    for folder in folders:
        lock = InstanceLock(folder)
        if not lock.acquire():
            for other in held:
                other.release()
            raise StartupError(_already_running(lock, paths))
        held.append(lock)
    discovery.remove(paths.discovery_file)
    if sys.platform != "win32" and paths.socket.exists():
        paths.socket.unlink()
    return held


def _already_running(lock: InstanceLock, paths: Paths) -> str:
    pid = lock.holder()
    info = discovery.read(paths.discovery_file)
    where = f" at {info.url}" if info is not None and info.pid == pid else ""
    who, stop = (f"pid {pid}", f"`kill {pid}`") if pid else ("another process", "its tray's Quit")
    return (
        f"Impasto is already running ({who}){where} on {lock.path.parent}; "
        f"stop it first with {stop} or the tray's Quit, or use another data_dir and runtime_dir"
    )


def make_folders(paths: Paths) -> None:
    """Paths.create; StartupError naming the setting whose folder cannot be made and the flag
    that moves it."""
    try:
        paths.create()
    except FolderError as exc:
        flag = exc.setting.replace("_", "-")
        raise StartupError(f"{exc}; choose another with --{flag}") from None


def start_logging(settings: Settings, paths: Paths) -> None:
    """The daemon's log; StartupError naming log_dir when its file cannot be written."""
    try:
        configure_daemon_logging(settings.log_level, paths.log_dir)
    except OSError as exc:
        raise StartupError(
            f"log_dir {paths.log_dir}: daemon.log cannot be written there "
            f"({exc.strerror or exc}); choose another folder with --log-dir"
        ) from None
