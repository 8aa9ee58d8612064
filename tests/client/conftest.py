"""Fixtures of the client tests."""

from __future__ import annotations

import pytest
from client_fakes import FakeDaemon

from impasto.client import stream


@pytest.fixture(autouse=True)
def quick_reconnects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scripted drops reconnect at once instead of after the daemon's 1 s retry hint."""
    monkeypatch.setattr(stream, "RECONNECT_DELAY", 0.001)


@pytest.fixture
def daemon() -> FakeDaemon:
    """A fake daemon for the blocking client."""
    return FakeDaemon()


@pytest.fixture
def async_daemon() -> FakeDaemon:
    """A fake daemon for the asyncio client."""
    return FakeDaemon(asynchronous=True)
