"""Shared fixtures: a real daemon subprocess per test module, on a free port and socket."""

from __future__ import annotations

from collections.abc import Iterator

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
