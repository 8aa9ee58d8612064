"""Shared fixtures: a real daemon subprocess per test module, on a free port and socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon


@pytest.fixture(scope="module")
def impasto_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A running daemon on the bundled tiny models; stopped when the module's tests end."""
    daemon = Daemon(tmp_path_factory.mktemp("daemon"), preview_every=1).start()
    daemon.wait_worker_ready()
    yield daemon
    daemon.stop()


@pytest.fixture
def daemon_factory(tmp_path: object) -> Iterator[type[Daemon]]:
    """Start daemons with custom settings; every one is stopped after the test."""
    started: list[Daemon] = []

    class Factory(Daemon):
        def start(self, timeout: float = 60.0) -> Daemon:
            started.append(self)
            return super().start(timeout)

    yield Factory
    for daemon in started:
        daemon.stop()


@pytest.fixture
def broken_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config.toml that is not TOML, made this process's config (IMPASTO_CONFIG)."""
    config = tmp_path / "config.toml"
    config.write_text("[broken\n")
    monkeypatch.setenv("IMPASTO_CONFIG", str(config))
    monkeypatch.delenv("IMPASTO_RUNTIME_DIR", raising=False)
    return config
