"""A daemon serving the bundled impasto-shapes model, shared by the semantic tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import Daemon, running_daemon


@pytest.fixture(scope="session")
def shapes_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with running_daemon(tmp_path_factory.mktemp("shapes")) as daemon:
        yield daemon
