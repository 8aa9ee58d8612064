"""The tray's choices without a screen: backend, opener, health, and what it says when it can't."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest

from impasto.client.types import Health, QueueState
from impasto_tray import app, backends, platforms
from impasto_tray.controller import TrayController
from impasto_tray.daemon import DaemonProcess
from impasto_tray.state import DaemonState


def test_windows_and_macos_use_their_own_backends_with_menus() -> None:
    assert backends.choose({}, "win32") == backends.Backend("win32", has_menu=True)
    assert backends.choose({}, "darwin") == backends.Backend("darwin", has_menu=True)


def test_linux_without_a_display_is_no_desktop() -> None:
    with pytest.raises(backends.NoDesktop, match="DISPLAY"):
        backends.choose({}, "linux")


def test_pystray_backend_variable_wins() -> None:
    chosen = backends.choose({"DISPLAY": ":5", "PYSTRAY_BACKEND": "xorg"}, "linux")
    assert chosen == backends.Backend("xorg", has_menu=False)


def test_without_pygobject_linux_falls_back_to_xorg_and_says_how_to_get_the_menu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backends, "missing_gtk", lambda: "No module named 'gi'")
    chosen = backends.choose({"DISPLAY": ":5", "DBUS_SESSION_BUS_ADDRESS": "unix:x"}, "linux")
    assert chosen.name == "xorg" and not chosen.has_menu
    assert "No module named 'gi'" in chosen.note and "impasto[tray-gtk]" in chosen.note


def test_without_a_session_bus_linux_falls_back_to_xorg(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(backends, "missing_gtk", lambda: "")
    chosen = backends.choose({"DISPLAY": ":5", "XDG_RUNTIME_DIR": str(tmp_path)}, "linux")
    assert chosen.name == "xorg" and "D-Bus" in chosen.note


@pytest.mark.parametrize(("watcher", "expected"), [(True, "appindicator"), (False, "gtk")])
def test_a_status_notifier_watcher_decides_between_sni_and_xembed(
    monkeypatch: pytest.MonkeyPatch, watcher: bool, expected: str
) -> None:
    monkeypatch.setattr(backends, "missing_gtk", lambda: "")
    monkeypatch.setattr(backends, "has_appindicator", lambda: True)
    monkeypatch.setattr(backends, "sni_watcher_present", lambda env: watcher)
    env = {"DISPLAY": ":5", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nowhere"}
    assert backends.choose(env, "linux") == backends.Backend(expected, has_menu=True)


def test_the_opener_variable_replaces_the_desktop_opener(tmp_path: Path) -> None:
    target = tmp_path / "opened.txt"
    script = tmp_path / "opener.py"
    script.write_text(f"import sys; open({str(target)!r}, 'a').write(sys.argv[1] + '\\n')")
    platform = platforms.current({platforms.OPENER_VARIABLE: f"{sys.executable} {script}"})
    platform.open_url("http://127.0.0.1:1/")
    platform.open_path("/some folder")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        target.exists() and target.read_text().count("\n") == 2
    ):
        time.sleep(0.1)
    assert sorted(target.read_text().splitlines()) == ["/some folder", "http://127.0.0.1:1/"]
    assert platforms.current({}) is platforms.os_module()


def test_a_broken_opener_variable_is_named_in_the_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IMPASTO_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("IMPASTO_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv(platforms.OPENER_VARIABLE, 'firefox "--new-tab')
    monkeypatch.delenv("DISPLAY", raising=False)
    assert app.run(start_daemon=False) == 1
    err = capsys.readouterr().err
    assert err == (
        "impasto tray: IMPASTO_TRAY_OPENER='firefox \"--new-tab' is not a command line: "
        "No closing quotation\n"
    )


class FakeClient:
    def __init__(self, health: str) -> None:
        self.health_status = health

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def queue(self) -> QueueState:
        return QueueState(paused=False)

    def health(self) -> Health:
        return Health(status=self.health_status, version="1")


@pytest.mark.parametrize(
    ("health", "state"), [("ok", DaemonState.IDLE), ("workers cannot start", DaemonState.ERROR)]
)
def test_a_daemon_whose_health_is_not_ok_shows_as_an_error(
    tmp_path: Path, health: str, state: DaemonState, caplog: pytest.LogCaptureFixture
) -> None:
    controller = TrayController(
        runtime_dir=tmp_path,
        output_dir=tmp_path,
        daemon=DaemonProcess(["true"]),
        platform=None,
        autostart_command=[],
    )
    controller.connect = lambda: FakeClient(health)  # type: ignore[method-assign,assignment,return-value]
    with caplog.at_level("INFO", logger="impasto_tray.controller"):
        snapshot = controller.refresh()
        controller.refresh()
    assert snapshot.state is state
    if state is DaemonState.ERROR:
        assert health in snapshot.status_line
    assert len(caplog.records) == 1  # a state is logged once, not per poll


def test_a_missing_pystray_says_to_install_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pystray", None)
    with pytest.raises(RuntimeError, match=r"install `impasto\[tray\]`"):
        app.import_pystray()


def test_the_http_client_does_not_log_every_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("httpx", "httpcore"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    app.quiet_logging()
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_a_bad_config_file_is_one_line_before_any_display_is_looked_for(
    broken_config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)  # the settings speak first, not the display
    assert app.run(start_daemon=False) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"impasto tray: {broken_config}: not valid TOML")
    assert len(err.splitlines()) == 1


def test_a_second_tray_says_the_first_runs_and_exits_without_a_second_icon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Started at login and again from the applications menu: one icon, not two."""
    runtime = tmp_path / "run"
    monkeypatch.setenv("IMPASTO_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("IMPASTO_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("IMPASTO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DISPLAY", raising=False)  # it must not get as far as a display
    first = app.TrayLock(runtime)
    assert first.take()  # the tray already running (a lock is per open file, even here)
    try:
        assert app.run(start_daemon=False) == 0
    finally:
        first.release()
    assert capsys.readouterr().err == f"impasto tray: already running (pid {os.getpid()})\n"
    again = app.TrayLock(runtime)
    assert again.take()  # free again once that tray is gone
    again.release()
