"""Find the running daemon: explicit arguments first, else the discovery file it writes."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from impasto.client.errors import DaemonNotRunning, SettingsError

TOKEN_ENV = "IMPASTO_TOKEN"
# Where the daemon is when no argument says so (the CLI's --url; Ollama's OLLAMA_HOST): before
# the discovery file, which only knows the daemon of this machine's own settings.
URL_ENV = "IMPASTO_URL"


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

    @property
    def where(self) -> str:
        """Where requests go, for messages: the socket, and the URL when TCP is tried too."""
        if self.socket is None:
            return self.url
        return f"{self.socket} or {self.url}" if self.tcp_fallback else self.socket


def default_runtime_dir() -> Path:
    """The runtime dir of the effective settings (IMPASTO_RUNTIME_DIR overrides it)."""
    # Imported here so that a client with an explicit endpoint never reads config files.
    from impasto.paths import resolve_paths
    from impasto.settings_load import load_settings

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


def daemon_url(text: str, source: str = "--url") -> str:
    """``text`` as a base URL: ``host:port`` means http, a trailing slash and ``/api/v1`` go;
    another scheme than http or https, a malformed address or port is a SettingsError naming
    ``source``."""
    url = text.strip()
    if "://" not in url:
        url = f"http://{url}"
    scheme, _, rest = url.partition("://")
    usage = f"{source} {text!r} is not the daemon's address"
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise SettingsError(f"{usage}: give http://HOST:PORT (e.g. http://127.0.0.1:8080)")
    # What httpx would raise later, from inside a request, as a traceback ("[::1", ":99999").
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise SettingsError(f"{usage}: {exc}; give http://HOST:PORT") from None
    if not parsed.host:
        raise SettingsError(f"{usage}: it names no host; give http://HOST:PORT")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise SettingsError(f"{usage}: the port must be between 1 and 65535")
    # The API's base URL, as docs and curl examples write it: the client adds /api/v1 itself.
    return url.rstrip("/").removesuffix("/api/v1")


def resolve_endpoint(
    base_url: str | None = None,
    socket: str | os.PathLike[str] | None = None,
    token: str | None = None,
    runtime_dir: str | os.PathLike[str] | None = None,
) -> Endpoint:
    """Explicit url/socket win, then an explicit ``runtime_dir``'s daemon.json, then
    IMPASTO_URL, then the daemon.json of the settings' runtime dir (its socket preferred when
    the file exists)."""
    _check_token(*((token, "--token") if token is not None else (_env_token(), TOKEN_ENV)))
    if base_url is None and socket is None and runtime_dir is None:
        from_env = os.environ.get(URL_ENV, "").strip()
        if from_env:
            url = daemon_url(from_env, URL_ENV)
            token = token if token is not None else _env_token() or _own_token(url)
            return Endpoint(url=url, token=token)
    if base_url is not None or socket is not None:
        return Endpoint(
            url=daemon_url(base_url) if base_url is not None else "http://localhost",
            socket=os.fspath(socket) if socket is not None else None,
            token=token if token is not None else _env_token(),
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


def _check_token(token: str, source: str) -> None:
    """A SettingsError naming ``source`` for a token an HTTP header cannot carry (httpx would
    fail inside the first request, with a traceback for a non-ASCII one)."""
    if not all(" " < char < "\x7f" for char in token):
        raise SettingsError(
            f"{source}: a token is printable ASCII without spaces (letters, digits, "
            "punctuation); this one holds other characters"
        )


def _env_token() -> str:
    return os.environ.get(TOKEN_ENV, "")


def _own_token(url: str) -> str:
    """The token of this machine's daemon when ``url`` is its address, else none."""
    try:
        info = read_discovery_file(default_runtime_dir() / "daemon.json")
    except (DaemonNotRunning, SettingsError):
        return ""
    return info.token if info.url.rstrip("/") == url else ""
