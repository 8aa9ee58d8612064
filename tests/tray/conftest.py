"""Fixtures of the tray tests: a private Xvfb display with a minimal system tray on it."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest

from tests.tray.desktop import need
from tests.tray.xserver import FakeSystemTray, Xvfb


@pytest.fixture(scope="module")
def x_display(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DISPLAY of an Xvfb server started for this module (pystray's xorg backend forced)."""
    need("Xvfb")
    server = Xvfb(tmp_path_factory.mktemp("xvfb") / "xvfb.log")
    saved = {key: os.environ.get(key) for key in ("DISPLAY", "PYSTRAY_BACKEND")}
    os.environ.update(DISPLAY=server.name, PYSTRAY_BACKEND="xorg")
    try:
        yield server.name
    finally:
        # pystray closes its X connection when an icon is collected: do it while X still runs.
        gc.collect()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()


@pytest.fixture
def system_tray(x_display: str) -> Iterator[FakeSystemTray]:
    """A panel that embeds docking icons."""
    tray = FakeSystemTray(x_display)
    yield tray
    tray.close()
