"""packaging/build.py's Nuitka command line, per OS (no build: Nuitka is not run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))

import build  # noqa: E402


@pytest.mark.parametrize("system", ["linux", "win32", "darwin"])
def test_only_windows_hides_the_console_the_tray_would_open(
    system: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A tray started from the Start menu or at login must not sit behind a console window
    for its whole life; the CLI in a terminal keeps using that terminal."""
    monkeypatch.setattr(build, "platform_key", lambda: system)
    command = build.nuitka_command("cpu", tmp_path, "1", "onefile")
    modes = [part for part in command if part.startswith("--windows-console-mode")]
    assert modes == (["--windows-console-mode=hide"] if system == "win32" else [])
    assert f"--include-module={build.TRAY_BACKENDS[system]}" in command
