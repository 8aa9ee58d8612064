"""Start-at-login entries per OS: written where the desktop reads them, and removed again."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from impasto_tray.platforms import CommandOpener, linux, macos, windows

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
    assert exec_arguments(lines["Exec"]) == ["/path with space/impasto", "tray"]
    linux.set_autostart(False, COMMAND)
    assert not entry.exists() and not linux.autostart_enabled()


def exec_arguments(value: str) -> list[str]:
    """Exec= split as the Desktop Entry spec says: the value's string escapes first, then
    double quotes (with \\ before " ` $ \\ inside), then %% for %."""
    escapes = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
    chars = iter(value)
    text = "".join(escapes[next(chars)] if char == "\\" else char for char in chars)
    arguments, current, quoted, started = [], "", False, False
    chars = iter(text)
    for char in chars:
        if quoted and char == "\\":
            escaped = next(chars)
            assert escaped in '"`$\\', f"{escaped!r} may not be escaped in {value!r}"
            current += escaped
        elif char == '"':
            quoted, started = not quoted, True
        elif char == " " and not quoted:
            if started:
                arguments.append(current)
            current, started = "", False
        else:
            assert quoted or char not in "\t\n\"'\\><~|&;$*?#()`", (char, value)
            current, started = current + char, True
    assert not quoted, value
    if started:
        arguments.append(current)
    return [argument.replace("%%", "%") for argument in arguments]


# Paths a user's home or a venv may have: spaces, quotes, a dollar, a percent, a backslash.
ODD_COMMAND = ['/home/Ann O\'Neil/My $HOME 100% \\ "x"/impasto', "tray", "--flag=a b"]


def test_linux_autostart_quotes_odd_paths_as_the_desktop_entry_spec_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    linux.set_autostart(True, ODD_COMMAND)
    entry = tmp_path / "autostart" / "impasto-tray.desktop"
    lines = dict(line.split("=", 1) for line in entry.read_text().splitlines()[1:])
    assert exec_arguments(lines["Exec"]) == ODD_COMMAND
    assert linux.exec_argument("/usr/bin/impasto") == "/usr/bin/impasto"  # plain stays plain
    validate = shutil.which("desktop-file-validate")
    if validate is not None:  # desktop-file-utils; it rejects shell-style single quotes
        check = subprocess.run([validate, str(entry)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="zombies are a POSIX thing")
def test_an_opener_that_exits_is_reaped_not_left_a_zombie(tmp_path: Path) -> None:
    done = tmp_path / "opened"
    opener = CommandOpener(linux, ["sh", "-c", 'echo "$1" > "$0"', str(done)])
    opener.open_path(str(tmp_path / "outputs"))
    deadline = time.monotonic() + 10
    while not done.exists():
        assert time.monotonic() < deadline, "the opener never ran"
        time.sleep(0.05)
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if not children.exists():
        pytest.skip("no /proc children list here")
    # Once the opener has exited, nothing of it may stay as a zombie child of the tray.
    while time.monotonic() < deadline:
        zombies = [
            pid
            for pid in children.read_text().split()
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        ]
        if not zombies:
            break
        time.sleep(0.05)
    assert not zombies, f"zombie openers: {zombies}"


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
