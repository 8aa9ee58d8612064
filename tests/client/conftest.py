"""Fixtures of the client tests."""

from __future__ import annotations

import pytest
from client_fakes import FakeDaemon


@pytest.fixture
def daemon() -> FakeDaemon:
    """A fake daemon for the blocking client."""
    return FakeDaemon()


@pytest.fixture
def async_daemon() -> FakeDaemon:
    """A fake daemon for the asyncio client."""
    return FakeDaemon(asynchronous=True)
