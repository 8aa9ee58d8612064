"""One daemon per data folder and per runtime folder, enforced by an OS lock (issue #20, item 6)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from impasto.paths import resolve_paths
from impasto.server import run_daemon
from impasto.settings import Settings
from impasto.startup import StartupError, check_port
from tests.harness import Daemon


def _serve(daemon: Daemon) -> subprocess.Popen[str]:
    daemon.root.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "impasto", "serve"],
        env=daemon.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_same_data_folder_with_another_runtime_folder_is_refused(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    first = daemon_factory(tmp_path / "a").start()
    twin = Daemon(first.root)
    twin.runtime_dir = tmp_path / "other-run"
    result = twin.refused()
    assert result.returncode == 1, result.stderr
    assert f"already running (pid {first.process.pid})" in result.stderr  # type: ignore[union-attr]
    assert "{" not in result.stderr and str(first.data_dir) in result.stderr
    assert not (twin.runtime_dir / "daemon.json").exists()
    assert first.discovery()["pid"] == first.process.pid  # type: ignore[union-attr]
    assert _healthy(first.url)


def test_same_runtime_folder_with_another_data_folder_is_refused(
    daemon_factory: type[Daemon], tmp_path: Path
) -> None:
    first = daemon_factory(tmp_path / "a").start()
    twin = Daemon(tmp_path / "b")
    twin.runtime_dir = first.runtime_dir
    result = twin.refused()
    assert result.returncode == 1
    assert f"pid {first.process.pid}" in result.stderr and first.url in result.stderr  # type: ignore[union-attr]
    assert first.discovery()["pid"] == first.process.pid  # type: ignore[union-attr]
    assert first.socket.exists() and _healthy(first.url)


def test_two_started_at_the_same_instant_exactly_one_runs(tmp_path: Path) -> None:
    for attempt in range(2):
        root = tmp_path / f"race{attempt}"
        daemons = [Daemon(root), Daemon(root)]
        procs = [_serve(d) for d in daemons]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                exited = [p for p in procs if p.poll() is not None]
                running = [d for d, p in zip(daemons, procs, strict=True) if p.poll() is None]
                # daemon.json is written just after the listeners answer: wait for both.
                ready = running and _healthy(running[0].url)
                if len(exited) == 1 and ready and (root / "run" / "daemon.json").exists():
                    break
                time.sleep(0.1)
            [loser] = [p for p in procs if p.poll() is not None]
            [winner] = [p for p in procs if p.poll() is None]
            assert loser.returncode == 1 and "already running" in loser.communicate()[1]
            info = json.loads((root / "run" / "daemon.json").read_text())
            assert info["pid"] == winner.pid
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(30)
        assert not (root / "run" / "daemon.json").exists()  # the winner removed its own


def test_a_killed_daemon_does_not_block_the_next(tmp_path: Path) -> None:
    first = Daemon(tmp_path).start()
    first.kill()
    assert (first.data_dir / "impasto.lock").exists()  # the file stays; the OS lock does not
    second = Daemon(tmp_path).start()
    try:
        assert second.discovery()["pid"] == second.process.pid != first.process.pid  # type: ignore[union-attr]
        assert os.path.exists(second.socket)
    finally:
        second.stop()


def test_a_port_another_program_holds_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Another program (or a daemon of other folders) on the port: the daemon said it was
    running at that URL, then stopped with status 0. Now it refuses at once, saying what to do."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        refused = Daemon(tmp_path, port=port).refused()
    assert refused.returncode == 1, refused
    assert refused.stderr.strip() == (
        f"impasto: port {port} on 127.0.0.1 is in use by another program: choose another with "
        "--port N (IMPASTO_PORT, or port in config.toml), or --port 0 for any free port"
    )
    assert "running" not in refused.stdout


def test_a_listener_that_ends_by_itself_fails_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The port taken between the check and the bind (``run_daemon`` is past the check): the
    server's task ends on its own, and the daemon stops with status 1 and the reason, not as if
    it had been asked to stop."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        settings = Settings(
            port=other.getsockname()[1],
            data_dir=str(tmp_path / "data"),
            runtime_dir=str(tmp_path / "run"),
            log_dir=str(tmp_path / "logs"),
            socket=False,
            show_test_models=True,
            default_model="sd-tiny",
        )
        paths = resolve_paths(settings)
        paths.create()
        try:
            code = asyncio.run(run_daemon(settings, paths))
            said = capsys.readouterr().err
        except StartupError as exc:  # it ended before the port answered: serve prints this
            code, said = 1, f"impasto: {exc}"
    assert code == 1
    assert said.startswith(
        ("impasto: the HTTP server stopped by itself: ", "impasto: the server could not start: ")
    ), said
    assert "Address already in use" in said or "in use" in said.lower(), said


def test_a_socket_path_longer_than_the_os_takes_is_refused(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path)
    daemon.runtime_dir = tmp_path / ("r" * 120)
    refused = daemon.refused()
    assert refused.returncode == 1, refused
    assert refused.stderr.startswith(f"impasto: the API socket path {daemon.socket} is "), refused
    assert "set socket_path (IMPASTO_SOCKET_PATH) or runtime_dir to a shorter" in refused.stderr


def test_a_host_this_machine_does_not_have_is_refused_naming_the_host() -> None:
    with pytest.raises(StartupError) as refused:
        check_port("192.0.2.1", 8080)  # TEST-NET-1: documentation only, on no interface
    assert str(refused.value).startswith(
        "cannot listen on 192.0.2.1: no network interface of this machine has that address"
    )
    check_port("127.0.0.1", 0)  # 0 is checked when the free port is picked


def test_unfinished_installs_resume_after_the_socket_umask_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon creates its socket under a process-wide umask of 0177: an install resumed
    before that is over makes its folders in threads, 0600 under it (not enterable)."""
    from impasto.services.installs import Installer

    seen: list[tuple[bool, int]] = []

    def resume(self: Installer) -> list[str]:
        umask = os.umask(0o022)
        os.umask(umask)
        seen.append((paths.socket.exists(), umask))
        if not paths.socket.exists():  # before the listeners (and the signal handlers)
            raise AssertionError("installs resumed before the socket was made")
        os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler stops it
        return []

    monkeypatch.setattr(Installer, "resume", resume)
    settings = Settings(
        port=0,
        data_dir=str(tmp_path / "data"),
        runtime_dir=str(tmp_path / "run"),
        log_dir=str(tmp_path / "logs"),
        show_test_models=True,
        default_model="sd-tiny",
        workers=1,
    )
    paths = resolve_paths(settings)
    paths.create()
    before = os.umask(0o022)
    os.umask(before)
    assert asyncio.run(run_daemon(settings, paths)) == 0
    assert seen == [(True, before)]
