"""Finding the daemon: the discovery file, socket preference, TCP fallback, overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from impasto.client import Client, DaemonNotRunning, SettingsError, resolve_endpoint
from impasto.client.transport import FallbackTransport


def write_discovery(folder: Path, **fields: object) -> Path:
    body = {"pid": os.getpid(), "url": "http://127.0.0.1:8181", "socket": None, "token": "t0k"}
    body.update(fields)
    path = folder / "daemon.json"
    path.write_text(json.dumps(body))
    return path


def test_existing_socket_is_preferred(tmp_path: Path) -> None:
    sock = tmp_path / "impasto.sock"
    sock.touch()
    write_discovery(tmp_path, socket=str(sock))
    endpoint = resolve_endpoint(runtime_dir=tmp_path)
    assert (endpoint.url, endpoint.socket, endpoint.token) == (
        "http://127.0.0.1:8181",
        str(sock),
        "t0k",
    )
    assert isinstance(Client(runtime_dir=tmp_path)._conn.http._transport, FallbackTransport)


def test_missing_socket_file_falls_back_to_tcp(tmp_path: Path) -> None:
    write_discovery(tmp_path, socket=str(tmp_path / "gone.sock"))
    endpoint = resolve_endpoint(runtime_dir=tmp_path)
    assert endpoint.socket is None
    assert endpoint.url == "http://127.0.0.1:8181"


def test_runtime_dir_comes_from_settings_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_discovery(tmp_path, url="http://127.0.0.1:9999/")
    monkeypatch.setenv("IMPASTO_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("IMPASTO_CONFIG", str(tmp_path / "no-config.toml"))
    assert resolve_endpoint().url == "http://127.0.0.1:9999"


def test_missing_discovery_file_means_not_running(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="impasto serve") as caught:
        Client(runtime_dir=tmp_path)
    assert str(tmp_path / "daemon.json") in str(caught.value)


@pytest.mark.skipif(sys.platform == "win32", reason="pid liveness is not checked on Windows")
def test_discovery_file_of_a_dead_process_is_stale(tmp_path: Path) -> None:
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    write_discovery(tmp_path, pid=int(finished.stdout))
    with pytest.raises(DaemonNotRunning, match="stale"):
        resolve_endpoint(runtime_dir=tmp_path)


def test_garbage_discovery_file_means_not_running(tmp_path: Path) -> None:
    (tmp_path / "daemon.json").write_text("{not json")
    with pytest.raises(DaemonNotRunning, match="unreadable"):
        resolve_endpoint(runtime_dir=tmp_path)


def test_explicit_arguments_skip_discovery(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_discovery(tmp_path)
    monkeypatch.setenv("IMPASTO_TOKEN", "from-env")
    tcp = resolve_endpoint(base_url="http://127.0.0.1:1234/", runtime_dir=tmp_path)
    assert (tcp.url, tcp.socket, tcp.token) == ("http://127.0.0.1:1234", None, "from-env")
    only_socket = resolve_endpoint(socket=tmp_path / "x.sock", token="given")
    assert (only_socket.socket, only_socket.token, only_socket.tcp_fallback) == (
        str(tmp_path / "x.sock"),
        "given",
        False,
    )


@pytest.fixture
def settings_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This machine's runtime dir, as the settings say, holding a daemon's discovery file."""
    for name in ("IMPASTO_URL", "IMPASTO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMPASTO_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("IMPASTO_CONFIG", str(tmp_path / "no-config.toml"))
    write_discovery(tmp_path)
    return tmp_path


def test_impasto_url_names_the_daemon_when_no_argument_does(
    settings_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPASTO_URL", "192.0.2.7:8080/")
    endpoint = resolve_endpoint()
    assert (endpoint.url, endpoint.socket, endpoint.token) == ("http://192.0.2.7:8080", None, "")
    monkeypatch.setenv("IMPASTO_TOKEN", "from-env")
    assert resolve_endpoint().token == "from-env"
    # Arguments still win: a URL, or a runtime dir to read.
    assert resolve_endpoint(base_url="http://127.0.0.1:1").url == "http://127.0.0.1:1"
    assert resolve_endpoint(runtime_dir=settings_runtime).url == "http://127.0.0.1:8181"


def test_impasto_url_of_this_machines_daemon_takes_its_token(
    settings_runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMPASTO_URL", "http://127.0.0.1:8181")
    assert resolve_endpoint().token == "t0k"
    monkeypatch.setenv("IMPASTO_URL", "http://127.0.0.1:8182")
    assert resolve_endpoint().token == ""


@pytest.mark.parametrize(
    ("where", "value"),
    [("IMPASTO_URL", "ftp://127.0.0.1:8080"), ("IMPASTO_URL", "http://"), ("--url", "unix:///x")],
)
def test_an_address_that_is_not_http_is_refused_by_name(
    settings_runtime: Path, monkeypatch: pytest.MonkeyPatch, where: str, value: str
) -> None:
    if where == "IMPASTO_URL":
        monkeypatch.setenv("IMPASTO_URL", value)
    with pytest.raises(SettingsError, match=f"{where} '{value}' is not the daemon's address"):
        resolve_endpoint(base_url=value if where == "--url" else None)
