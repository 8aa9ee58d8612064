"""The real tray on a real X display (Xvfb), following a real daemon through its states."""

from __future__ import annotations

import collections
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from impasto_tray import pystray_fixes
from impasto_tray.app import create_icon, import_pystray
from impasto_tray.controller import TrayController
from impasto_tray.daemon import DaemonProcess
from impasto_tray.icons import COLOURS
from impasto_tray.state import DaemonState, Snapshot
from tests.harness import TINY, Daemon
from tests.tray.desktop import need
from tests.tray.xserver import FakeSystemTray, IconWindow, Xvfb, screenshot

# Long enough on the tiny model for a 0.1 s poll to see several steps.
SLOW_JOB = {**TINY, "width": 128, "height": 128, "steps": 150, "prompt": "a slow lighthouse"}


class FakePlatform:
    """Records what the tray asked the OS to open; autostart kept in memory."""

    def __init__(self) -> None:
        self.opened: list[tuple[str, str]] = []
        self.autostart: list[str] | None = None

    def open_url(self, url: str) -> None:
        self.opened.append(("url", url))

    def open_path(self, path: str) -> None:
        self.opened.append(("path", path))

    def autostart_enabled(self) -> bool:
        return self.autostart is not None

    def set_autostart(self, enabled: bool, command: list[str]) -> None:
        self.autostart = list(command) if enabled else None


class RunningTray:
    """The pystray icon of a TrayController, run in a thread against ``daemon``'s folders."""

    def __init__(self, daemon: Daemon, display: str, system_tray: FakeSystemTray) -> None:
        self.display = display
        self.system_tray = system_tray
        self.platform = FakePlatform()
        self.process = DaemonProcess(
            env=daemon.env(), log_file=daemon.root / "tray-daemon.out", backoff=(0.5,)
        )
        self.controller = TrayController(
            runtime_dir=daemon.runtime_dir,
            output_dir=daemon.data_dir / "outputs",
            daemon=self.process,
            platform=self.platform,
            autostart_command=["impasto", "tray"],
        )
        self.seen: list[Snapshot] = []
        self.controller.observers.append(self.seen.append)
        self.loop_ended = threading.Event()
        self.stuck = threading.Event()
        self.icon = create_icon(import_pystray(), self.controller, self.loop_ended, self.stuck.set)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.icon.run(setup=self._setup)
        finally:
            self.loop_ended.set()

    def wait_quit(self, timeout: float = 60.0) -> None:
        """Until the loop ends, or the app's fallback for a stuck pystray loop fires."""
        deadline = time.monotonic() + timeout
        while not (self.loop_ended.is_set() or self.stuck.is_set()):
            assert time.monotonic() < deadline, "Quit neither ended the loop nor the process"
            time.sleep(0.05)

    def _setup(self, icon: Any) -> None:
        icon.visible = True
        self.controller.startup()
        self.controller.watch(0.1)

    def click(self, label: str) -> None:
        """Activate the menu item showing ``label`` now, as a click would."""
        labels = [item.text for item in self.icon.menu.items]
        assert label in labels, labels
        self.icon.menu.items[labels.index(label)](self.icon)

    def wait_for(self, check: Callable[[Snapshot], bool], timeout: float = 90.0) -> Snapshot:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.controller.snapshot):
                return self.controller.snapshot
            time.sleep(0.05)
        raise TimeoutError(f"tray stuck at {self.controller.snapshot}; saw {self.seen}")

    def wait_state(self, state: DaemonState, timeout: float = 90.0) -> Snapshot:
        return self.wait_for(lambda s: s.state is state, timeout)

    def window(self) -> IconWindow:
        deadline = time.monotonic() + 20
        while not self.system_tray.docked:
            assert time.monotonic() < deadline, "the icon never asked the system tray to dock"
            time.sleep(0.05)
        return IconWindow(self.display, self.system_tray.docked[-1])

    def stop(self) -> None:
        self.controller.quit()
        self.icon.stop()
        self.thread.join(10)


def dominant_colour(pixels: np.ndarray) -> tuple[int, int, int]:
    """The commonest colour that is neither the black background nor the white marks."""
    flat = [(int(r), int(g), int(b)) for r, g, b in pixels.reshape(-1, 3)]
    counts = collections.Counter(p for p in flat if p not in {(0, 0, 0), (255, 255, 255)})
    if not counts:  # not drawn yet
        return (0, 0, 0)
    colour: tuple[int, int, int] = counts.most_common(1)[0][0]
    return colour


def wait_window(window: IconWindow, state: DaemonState, timeout: float = 20.0) -> None:
    """Until the docked window shows ``state``'s colour."""
    deadline = time.monotonic() + timeout
    while dominant_colour(window.pixels()) != COLOURS[state]:
        assert time.monotonic() < deadline, f"icon never turned {state}"
        time.sleep(0.05)


def output_of(daemon: Daemon) -> str:
    """The end of what the tray's daemons printed (a crash's last words)."""
    return (daemon.root / "tray-daemon.out").read_text(errors="replace")[-6000:]


@pytest.fixture
def tray_for(
    x_display: str, system_tray: FakeSystemTray
) -> Iterator[Callable[[Daemon], RunningTray]]:
    trays: list[RunningTray] = []

    def start(daemon: Daemon) -> RunningTray:
        trays.append(RunningTray(daemon, x_display, system_tray))
        return trays[-1]

    yield start
    for tray in trays:
        tray.stop()
    # The last test's fixture values outlive the module's X server (pytest drops them after the
    # module teardown): let go of the icons here, so x_display collects them while X runs.
    trays.clear()


@pytest.mark.slow
def test_the_tray_runs_its_daemon_through_idle_generating_and_stopped(
    tray_for: Callable[[Daemon], RunningTray], tmp_path: Path, x_display: str
) -> None:
    harness = Daemon(tmp_path / "daemon")
    tray = tray_for(harness)  # no daemon yet: the tray starts one as its child
    window = tray.window()
    idle = tray.wait_state(DaemonState.IDLE)
    assert idle.owned and tray.process.alive
    assert tray.seen[0].state in (DaemonState.STOPPED, DaemonState.STARTING)
    wait_window(window, DaemonState.IDLE)
    assert window.title() == "Impasto: Idle"  # the title is set before the picture

    # One job: idle -> generating (with progress in the tooltip) -> idle.
    harness.wait_worker_ready()
    with harness.client() as http:
        assert http.post("/api/v1/generate", json=SLOW_JOB).status_code == 202
    generating = tray.wait_state(DaemonState.GENERATING)
    assert generating.total == 150
    titles = set()
    deadline = time.monotonic() + 60
    while tray.controller.snapshot.state is DaemonState.GENERATING and time.monotonic() < deadline:
        titles.add(window.title())
        time.sleep(0.05)
    assert any(t.startswith("Impasto: Generating ") and t.endswith("/150") for t in titles), titles
    tray.wait_state(DaemonState.IDLE)
    states = [s.state for s in tray.seen]
    first_gen = states.index(DaemonState.GENERATING)
    assert DaemonState.IDLE in states[:first_gen] and DaemonState.IDLE in states[first_gen:]
    steps = [s.step for s in tray.seen if s.state is DaemonState.GENERATING]
    assert len(set(steps)) > 1 and steps == sorted(steps)
    screenshot(x_display, tmp_path / "tray.png")

    # Pause and resume from the menu.
    tray.click("Pause queue")
    tray.wait_state(DaemonState.PAUSED, 20)
    wait_window(window, DaemonState.PAUSED)
    with harness.client() as http:
        assert http.get("/api/v1/queue").json()["paused"] is True
    tray.click("Resume queue")
    tray.wait_state(DaemonState.IDLE, 20)

    # Open Impasto and the outputs folder go through the platform seam.
    tray.click("Open Impasto")
    tray.click("Open outputs folder")
    tray.wait_for(lambda _s: len(tray.platform.opened) == 2, 10)
    assert ("url", f"{harness.url}/") in tray.platform.opened
    assert ("path", str(harness.data_dir / "outputs")) in tray.platform.opened

    # Start at login toggles the entry.
    tray.click("Start at login")
    tray.wait_for(lambda _s: tray.platform.autostart == ["impasto", "tray"], 10)

    # A killed daemon is restarted after the backoff.
    killed = tray.process.process
    assert killed is not None
    killed.kill()
    tray.wait_state(DaemonState.ERROR, 20)
    tray.wait_state(DaemonState.IDLE)
    assert tray.process.process is not None and tray.process.process.pid != killed.pid

    # Stop and start from the menu.
    child = tray.process.process
    tray.click("Stop daemon")
    tray.wait_state(DaemonState.STOPPED, 40)
    assert child.poll() == 0, f"not stopped gracefully:\n{output_of(harness)}"
    wait_window(window, DaemonState.STOPPED)
    assert window.title() == "Impasto: Daemon stopped"
    time.sleep(1.5)  # longer than the backoff: a stop on purpose is not restarted
    assert tray.controller.snapshot.state is DaemonState.STOPPED
    tray.click("Start daemon")
    tray.wait_state(DaemonState.IDLE)

    # Quit stops the daemon this tray started.
    child = tray.process.process
    tray.click("Quit")
    tray.wait_quit()
    assert child is not None and child.poll() == 0, output_of(harness)
    assert not harness.discovery_file.exists()


@pytest.mark.slow
def test_the_tray_attaches_to_a_running_daemon_and_leaves_it_running(
    tray_for: Callable[[Daemon], RunningTray], tmp_path: Path
) -> None:
    harness = Daemon(tmp_path / "daemon", token="secret-token").start()
    try:
        tray = tray_for(harness)
        attached = tray.wait_state(DaemonState.IDLE)
        assert not attached.owned and tray.process.process is None
        tray.click("Open Impasto")
        tray.wait_for(lambda _s: bool(tray.platform.opened), 10)
        assert tray.platform.opened == [("url", f"{harness.url}/?token=secret-token")]
        tray.click("Quit")
        tray.wait_quit()
        assert harness.process is not None and harness.process.poll() is None
        with harness.client() as http:
            assert http.get("/api/v1/health").status_code == 200
    finally:
        harness.stop()


def test_the_icon_goes_quietly_when_the_x_server_went_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session ends (X server gone) before the tray's icon is collected: pystray closing its
    display raised into Python's "Exception ignored" at exit; the fixed icon says nothing."""
    need("Xvfb")
    server = Xvfb(tmp_path / "xvfb.log")
    try:
        monkeypatch.setenv("DISPLAY", server.name)
        # The X11 backend whatever pystray picks here (it looks for a display on import).
        import pystray._xorg as pystray_xorg

        icon = pystray_fixes.icon_class(pystray_xorg)(
            "impasto", icon=Image.new("RGB", (16, 16), "red"), title="impasto"
        )
        assert icon._display.get_display_name() == server.name  # connected to this server
    finally:
        server.stop()
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    del icon
    gc.collect()
    assert [repr(u.exc_value) for u in unraisable] == []
