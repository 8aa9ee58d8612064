"""Settings a daemon cannot serve are refused at start, in one line, before anything listens;
settings it can serve by making a folder are served."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from impasto.server import _local_host
from tests.harness import Daemon
from tests.tools import linux_only


def test_an_unknown_execution_provider_is_refused_before_anything_starts(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, provider="FooExecutionProvider")
    result = daemon.refused()
    assert result.returncode == 1, result.stderr
    assert "unknown execution provider 'FooExecutionProvider'" in result.stderr
    assert "cpu" in result.stderr and "auto" in result.stderr  # the names it accepts
    assert "Traceback" not in result.stderr
    assert not daemon.discovery_file.exists()


def test_an_out_of_range_setting_names_the_key_and_its_range(tmp_path: Path) -> None:
    result = Daemon(tmp_path, workers=-3).refused()
    assert result.returncode == 2, result.stderr
    assert "workers" in result.stderr and "Allowed: 0-64" in result.stderr


def test_a_socket_path_in_a_missing_folder_gets_a_private_folder(tmp_path: Path) -> None:
    linux_only("Unix sockets")
    socket_path = tmp_path / "sockets" / "deeper" / "impasto.sock"
    daemon = Daemon(tmp_path / "d", socket_path=str(socket_path)).start()
    try:
        transport = httpx.HTTPTransport(uds=str(socket_path))
        with httpx.Client(transport=transport, base_url="http://impasto") as client:
            assert client.get("/api/v1/health").status_code == 200
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    finally:
        daemon.stop()


@pytest.mark.parametrize(
    ("host", "url_host"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "[::1]"),
        ("localhost", "localhost"),
    ],
)
def test_local_clients_reach_a_wildcard_bind_on_loopback(host: str, url_host: str) -> None:
    # The URL printed and written for the CLI and the tray was http://0.0.0.0:PORT/, which a
    # browser on Windows or macOS cannot open (tests bind loopback only: the helper alone).
    assert _local_host(host) == url_host


def test_the_folders_the_daemon_makes_are_private_but_the_models_folder(tmp_path: Path) -> None:
    """Pictures carry their prompts, the database every request: another user of the machine
    reads none of them. A folder that exists keeps its mode."""
    linux_only("POSIX modes")
    shared = tmp_path / "shared-outputs"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    root = tmp_path / "home"
    daemon = Daemon(root, models_dir=str(root / "made" / "models"), output_dir=str(shared))
    daemon.start()
    try:
        modes = {
            folder: stat.S_IMODE(folder.stat().st_mode)
            for folder in (daemon.data_dir, daemon.data_dir / "uploads", daemon.log_dir)
        }
        assert modes == dict.fromkeys(modes, 0o700)
        assert stat.S_IMODE((root / "made" / "models").stat().st_mode) == 0o777 & ~_umask()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    finally:
        daemon.stop()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
