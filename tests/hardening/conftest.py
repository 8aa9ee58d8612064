"""A daemon with a token, shared by the hardening tests of one module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Daemon

TOKEN = "hardening-token"


@pytest.fixture(scope="module")
def guarded_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon started with ``--token``: every route but the public ones needs it."""
    daemon = Daemon(tmp_path_factory.mktemp("guarded"), token=TOKEN).start()
    yield daemon
    daemon.stop()
