"""The tray's controller against real daemons, without a display."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from impasto_tray.controller import TrayController
from impasto_tray.daemon import DaemonProcess
from impasto_tray.state import DaemonState
from tests.harness import Daemon
from tests.tray.test_tray_x11 import FakePlatform


@pytest.mark.slow
def test_a_child_refused_by_another_daemon_gives_way_and_the_tray_attaches(
    tmp_path: Path,
) -> None:
    """A daemon started at the same time (systemd at login) wins the instance lock: the tray's
    own child exits 1, and the tray attaches to the winner instead of restarting a child it
    refuses every 1, 2, 5, 15, 30 s for as long as the tray runs."""
    other = Daemon(tmp_path / "other").start()
    try:
        process = DaemonProcess(
            [sys.executable, "-m", "impasto", "serve"],
            env=other.env(),
            log_file=tmp_path / "tray-daemon.out",
            backoff=(0.2,),
        )
        controller = TrayController(
            runtime_dir=other.runtime_dir,
            output_dir=other.data_dir / "outputs",
            daemon=process,
            platform=FakePlatform(),
            autostart_command=["impasto", "tray"],
        )
        process.start()  # as the tray did when nothing answered yet
        child = process.process
        assert child is not None
        assert child.wait(60) == 1  # refused: another daemon runs on this runtime_dir
        snapshot = controller.refresh()
        assert snapshot.state is DaemonState.IDLE and not snapshot.owned
        assert not process.wanted
        time.sleep(0.5)  # past the backoff: nothing restarts
        controller.refresh()
        assert process.process is None and not controller.snapshot.owned
        assert "already running" in (tmp_path / "tray-daemon.out").read_text()
        controller.quit()  # leaves the daemon it did not start
        assert other.process is not None and other.process.poll() is None
    finally:
        other.stop()


class FailingPlatform(FakePlatform):
    """An opener that is not installed."""

    def open_path(self, path: str) -> None:
        raise FileNotFoundError(2, "No such file or directory", "xdg-open")

    open_url = open_path


def controller_for(output_dir: Path, platform: FakePlatform) -> TrayController:
    return TrayController(
        runtime_dir=output_dir.parent / "run",
        output_dir=output_dir,
        daemon=DaemonProcess(["true"]),
        platform=platform,
        autostart_command=["impasto", "tray"],
    )


def test_open_outputs_creates_the_folder_and_opens_its_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    platform = FakePlatform()
    controller_for(Path("-outputs 'odd' $dir"), platform).open_outputs()
    folder = tmp_path / "-outputs 'odd' $dir"
    assert folder.is_dir()
    assert platform.opened == [("path", str(folder))]  # not "-outputs...", an opener's option


def test_open_outputs_says_why_it_cannot_instead_of_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    taken = tmp_path / "outputs"
    taken.write_text("a file where the folder should be")
    platform = FakePlatform()
    with caplog.at_level("WARNING", logger="impasto_tray.controller"):
        controller_for(taken, platform).open_outputs()
        controller_for(tmp_path / "fine", FailingPlatform()).open_outputs()
    assert platform.opened == []
    messages = [record.getMessage() for record in caplog.records]
    assert f"cannot open the outputs folder {taken}" in messages[0]
    assert "xdg-open" in messages[1]
