"""Finding the daemon: the discovery file, socket preference, TCP fallback, overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from impasto.client import Client, DaemonNotRunning, resolve_endpoint
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
    assert isinstance(Client(runtime_dir=tmp_path)._http._transport, FallbackTransport)


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
