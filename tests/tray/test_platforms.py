"""Start-at-login entries per OS: written where the desktop reads them, and removed again."""

from __future__ import annotations

import plistlib
import shlex
from pathlib import Path

import pytest

from impasto_tray.platforms import linux, macos, windows

COMMAND = ["/opt/impasto/impasto", "tray"]


def test_linux_autostart_is_an_xdg_desktop_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert not linux.autostart_enabled()
    linux.set_autostart(True, ["/path with space/impasto", "tray"])
    entry = tmp_path / "autostart" / "impasto-tray.desktop"
    assert linux.autostart_enabled() and entry.is_file()
    lines = dict(line.split("=", 1) for line in entry.read_text().splitlines()[1:])
    assert lines["Type"] == "Application"
    assert shlex.split(lines["Exec"]) == ["/path with space/impasto", "tray"]
    linux.set_autostart(False, COMMAND)
    assert not entry.exists() and not linux.autostart_enabled()


def test_linux_opener_is_xdg_open(monkeypatch: pytest.MonkeyPatch) -> None:
    launched: list[list[str]] = []
    monkeypatch.setattr(linux, "_launch", launched.append)
    linux.open_path("/tmp/outputs")
    linux.open_url("http://127.0.0.1:7860/")
    assert launched == [["xdg-open", "/tmp/outputs"], ["xdg-open", "http://127.0.0.1:7860/"]]


def test_macos_autostart_is_a_launch_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    macos.set_autostart(True, COMMAND)
    agent = tmp_path / "Library" / "LaunchAgents" / "org.impasto.tray.plist"
    data = plistlib.loads(agent.read_bytes())
    assert data["ProgramArguments"] == COMMAND and data["RunAtLoad"] is True
    assert data["Label"] == "org.impasto.tray" and macos.autostart_enabled()
    macos.set_autostart(False, COMMAND)
    assert not agent.exists()


def test_windows_run_value_quotes_paths_with_spaces() -> None:
    value = windows.run_value([r"C:\Users\A B\AppData\Local\Programs\Impasto\impasto.exe", "tray"])
    assert value == r'"C:\Users\A B\AppData\Local\Programs\Impasto\impasto.exe" tray'
