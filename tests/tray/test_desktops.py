"""`impasto tray` as a user runs it, under real tray hosts on Xvfb, looked at on the screen.

XEmbed: trayer and tint2 (pystray's ``gtk`` backend, and its menu-less ``xorg`` one);
StatusNotifierItem: status-notifier-watcher with gtk-sni-tray-standalone as the host
(pystray's ``appindicator`` backend). Each test finds the icon by its state colour in a
screenshot, checks its size, opens the menu with a real click and picks items with the
keyboard, and checks the effect through the daemon's API.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from impasto_tray.icons import COLOURS
from impasto_tray.state import DaemonState
from tests.harness import Daemon
from tests.tray.desktop import Processes, Screen, need, need_gtk, start_session_bus, wait_until
from tests.tray.xserver import Xvfb

pytestmark = pytest.mark.slow

# IMPASTO_TRAY_OPENER: writes each URL or folder the tray opens to opener.txt.
OPENER = (
    "import pathlib, sys\n"
    "pathlib.Path(sys.argv[0]).with_suffix('.txt').open('a').write(sys.argv[1] + '\\n')\n"
)
# The smallest icon a panel should draw; the fault was one pixel wide.
MIN_ICON = 16
# Menu rows a keyboard "Down" reaches from the top, by the daemon's state (disabled rows
# are skipped): the status line and separators never take the selection.
RUNNING_ROWS = [
    "Open Impasto",
    "Open outputs folder",
    "Stop daemon",
    "Pause queue",
    "Start at login",
    "Quit",
]
STOPPED_ROWS = ["Open outputs folder", "Start daemon", "Start at login", "Quit"]


class Desktop:
    """Xvfb plus whatever the test starts on it; ``env`` is what programs on it get."""

    def __init__(self, root: Path) -> None:
        need("Xvfb", "xdotool")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.xvfb = Xvfb(root / "xvfb.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSTRAY", "DBUS"))}
        env.update(DISPLAY=self.xvfb.name, NO_AT_BRIDGE="1", XDG_CONFIG_HOME=str(root / "config"))
        self.processes = Processes(root / "logs", env)
        self.screen = Screen(self.xvfb.name, env)

    @property
    def env(self) -> dict[str, str]:
        return self.processes.env

    def close(self) -> None:
        self.screen.close()
        self.processes.close()
        self.xvfb.stop()

    def trayer(self) -> subprocess.Popen[bytes]:
        need("trayer")
        panel = self.processes.start(
            "trayer",
            [
                "trayer",
                "--edge",
                "top",
                "--align",
                "right",
                "--widthtype",
                "request",
                "--height",
                "32",
            ],
        )
        self.wait_xembed_tray()
        return panel

    def tint2(self) -> None:
        need("tint2")
        config = self.root / "tint2rc"
        config.write_text(
            "panel_items = S\npanel_size = 100% 32\npanel_position = top center horizontal\n"
            "systray_padding = 2 2 2\nsystray_icon_size = 24\n"
        )
        self.processes.start("tint2", ["tint2", "-c", str(config)])
        self.wait_xembed_tray(timeout=60)  # without a window manager tint2 waits ~10 s

    def sni_host(self) -> None:
        need("dbus-daemon", "status-notifier-watcher", "gtk-sni-tray-standalone")
        start_session_bus(self.processes)
        self.processes.start("watcher", ["status-notifier-watcher"])
        self.processes.start("sni-host", ["gtk-sni-tray-standalone", "--top"])

    def wait_xembed_tray(self, timeout: float = 30) -> None:
        from Xlib import X

        atom = self.screen.display.intern_atom("_NET_SYSTEM_TRAY_S0")
        wait_until(
            lambda: self.screen.display.get_selection_owner(atom) != X.NONE,
            "the XEmbed tray",
            timeout,
        )


class Tray:
    """`python -m impasto tray` on ``desktop`` for ``daemon``'s folders and port."""

    def __init__(self, desktop: Desktop, daemon: Daemon, **env: str) -> None:
        self.desktop = desktop
        self.daemon = daemon
        opener = desktop.root / "opener.py"
        opener.write_text(OPENER)
        self.opened_file = opener.with_suffix(".txt")
        self.log_file = desktop.root / "tray.log"
        environment = {
            **desktop.env,
            **{k: v for k, v in daemon.env().items() if k.startswith("IMPASTO_")},
            **env,
        }
        environment["IMPASTO_TRAY_OPENER"] = f"{sys.executable} {opener}"
        environment.pop("IMPASTO_PARENT_PID")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "impasto", "tray"],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def opened(self) -> list[str]:
        return self.opened_file.read_text().splitlines() if self.opened_file.exists() else []

    def wait_exit(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"the tray did not exit:\n{self.log()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    # -- the daemon, through its API ---------------------------------------------------------

    def api(self, path: str) -> dict | None:
        try:
            with self.daemon.client() as http:
                return http.get(path).json()
        except httpx.HTTPError:
            return None

    def wait_running(self, timeout: float = 120) -> None:
        def answered() -> bool:
            assert self.process.poll() is None, f"the tray exited:\n{self.log()}"
            return self.api("/api/v1/health") is not None

        wait_until(answered, "the daemon to answer", timeout)

    def wait_paused(self, paused: bool) -> None:
        wait_until(
            lambda: (self.api("/api/v1/queue") or {}).get("paused") is paused,
            f"queue paused={paused}",
            20,
        )

    # -- the screen ------------------------------------------------------------------------

    def icon(self, state: DaemonState, timeout: float = 90) -> tuple[int, int, int, int]:
        """The icon's box on screen once it shows ``state``'s colour; checks its size. The
        first one waits for the daemon the tray started, which a loaded machine (CI, two
        cores, other tests' daemons) can take more than 30 s to bring up."""
        box = wait_until(
            lambda: self.desktop.screen.find(COLOURS[state]), f"the {state} icon on screen", timeout
        )
        self.desktop.screen.save(self.desktop.root / f"screen-{state}.png")
        width, height = box[2:]
        assert MIN_ICON <= width <= 64 and MIN_ICON <= height <= 64, box
        assert abs(width - height) <= 2, f"the icon is stretched: {box}"
        return box

    def menu(self, state: DaemonState, label: str) -> None:
        """Open the menu with a right click on the icon and pick ``label`` by keyboard."""
        screen = self.desktop.screen
        left, top, width, height = self.icon(state)
        screen.click(left + width // 2, top + height // 2, button=3)
        wait_until(screen.popups, "the tray menu to open", 15)
        screen.save(self.desktop.root / f"menu-{label}.png")
        rows = STOPPED_ROWS if state is DaemonState.STOPPED else RUNNING_ROWS
        screen.keys(*["Down"] * (rows.index(label) + 1), "Return")
        wait_until(lambda: not screen.popups(), "the menu to close", 15)


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[Desktop]:
    screen = Desktop(tmp_path / "desktop")
    yield screen
    screen.close()


@pytest.fixture
def tray_on(desktop: Desktop) -> Iterator[Callable[..., Tray]]:
    trays: list[Tray] = []

    def start(daemon: Daemon, **env: str) -> Tray:
        trays.append(Tray(desktop, daemon, **env))
        return trays[-1]

    yield start
    for tray in trays:
        tray.stop()


def assert_clean(log: str) -> None:
    """No tracebacks and no per-request HTTP log lines."""
    assert "Traceback" not in log and "AssertionError" not in log, log
    assert "httpx" not in log and "HTTP Request" not in log, log


def test_xembed_trayer_menu_drives_the_daemon(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    need_gtk()
    desktop.trayer()
    start_session_bus(desktop.processes)
    daemon = Daemon(tmp_path / "daemon")
    tray = tray_on(daemon)
    tray.wait_running()
    assert "gtk backend" in tray.log()

    tray.menu(DaemonState.IDLE, "Pause queue")
    tray.wait_paused(True)
    tray.icon(DaemonState.PAUSED)  # still full size after a change of picture
    tray.menu(DaemonState.PAUSED, "Pause queue")  # now labelled "Resume queue"
    tray.wait_paused(False)

    tray.menu(DaemonState.IDLE, "Open Impasto")
    tray.menu(DaemonState.IDLE, "Open outputs folder")
    wait_until(lambda: len(tray.opened()) == 2, "the opener to run twice", 15)
    assert tray.opened() == [f"{daemon.url}/", str(daemon.data_dir / "outputs")]

    tray.menu(DaemonState.IDLE, "Start at login")
    autostart = desktop.root / "config" / "autostart" / "impasto-tray.desktop"
    wait_until(autostart.is_file, "the autostart entry", 15)

    tray.menu(DaemonState.IDLE, "Stop daemon")
    wait_until(lambda: tray.api("/api/v1/health") is None, "the daemon to stop", 60)
    tray.icon(DaemonState.STOPPED)
    tray.menu(DaemonState.STOPPED, "Start daemon")
    tray.wait_running()

    tray.menu(DaemonState.IDLE, "Quit")
    assert tray.wait_exit() == 0
    assert not daemon.discovery_file.exists(), "Quit left the tray's daemon running"
    log = tray.log()
    assert_clean(log)
    assert log.count("Idle") <= 6, log  # state changes only


def test_xembed_tint2_attached_daemon_survives_ctrl_c(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    need_gtk()
    desktop.tint2()
    start_session_bus(desktop.processes)
    daemon = Daemon(tmp_path / "daemon").start()
    try:
        tray = tray_on(daemon)
        tray.wait_running()
        tray.icon(DaemonState.IDLE)
        with daemon.client() as http:
            assert http.post("/api/v1/queue/pause").status_code == 200
        tray.icon(DaemonState.PAUSED)
        with daemon.client() as http:
            assert http.post("/api/v1/queue/resume").status_code == 200
        tray.menu(DaemonState.IDLE, "Open outputs folder")
        wait_until(tray.opened, "the opener", 15)
        assert tray.opened() == [str(daemon.data_dir / "outputs")]
        tray.process.send_signal(signal.SIGINT)
        assert tray.wait_exit(30) == 0
        assert_clean(tray.log())
        assert daemon.process is not None and daemon.process.poll() is None
        assert tray.api("/api/v1/health") is not None, "the attached daemon was stopped"
    finally:
        daemon.stop()


def test_xembed_without_pygobject_keeps_its_size_and_opens_the_ui(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    panel = desktop.trayer()
    daemon = Daemon(tmp_path / "daemon")
    tray = tray_on(daemon, PYSTRAY_BACKEND="xorg")
    tray.wait_running()
    first = tray.icon(DaemonState.IDLE)
    embedded = desktop.screen.windows_at(first[0] + first[2] // 2, first[1] + first[3] // 2)
    for paused in (True, False, True, False):  # the icon shrank after the first change
        with daemon.client() as http:
            http.post(f"/api/v1/queue/{'pause' if paused else 'resume'}")
        box = tray.icon(DaemonState.PAUSED if paused else DaemonState.IDLE)
        assert abs(box[2] - first[2]) <= 2 and abs(box[3] - first[3]) <= 2, (box, first)
        # Docked once: pystray asked trayer to embed it again on every change of picture.
        assert desktop.screen.windows_at(box[0] + box[2] // 2, box[1] + box[3] // 2) == embedded
    left, top, width, height = first
    desktop.screen.click(left + width // 2, top + height // 2)
    wait_until(tray.opened, "a click to open the web UI", 15)
    assert tray.opened() == [f"{daemon.url}/"]

    # A panel that starts after the icon (tint2 at login, a restarted panel) gets it docked.
    panel.kill()
    panel.wait()
    wait_until(lambda: desktop.screen.find(COLOURS[DaemonState.IDLE]) is None, "the panel gone")
    desktop.trayer()
    tray.icon(DaemonState.IDLE)
    tray.process.send_signal(signal.SIGINT)
    assert tray.wait_exit(60) == 0
    assert not daemon.discovery_file.exists(), "Ctrl+C left the tray's daemon running"
    assert_clean(tray.log())


def test_status_notifier_item_menu(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    need_gtk()
    desktop.sni_host()
    daemon = Daemon(tmp_path / "daemon").start()
    try:
        tray = tray_on(daemon)
        tray.wait_running()
        wait_until(lambda: "appindicator backend" in tray.log(), "the SNI backend", 30)
        tray.menu(DaemonState.IDLE, "Pause queue")
        tray.wait_paused(True)
        tray.icon(DaemonState.PAUSED)
        tray.menu(DaemonState.PAUSED, "Quit")
        assert tray.wait_exit() == 0
        assert_clean(tray.log())
        assert tray.api("/api/v1/health") is not None, "Quit stopped a daemon it did not start"
    finally:
        daemon.stop()


def test_no_tray_host_is_one_clear_line(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    tray = tray_on(Daemon(tmp_path / "daemon"), IMPASTO_TRAY_HOST_WAIT="1")
    assert tray.wait_exit(60) == 1
    log = tray.log()
    assert "no system tray found" in log and "AppIndicator" in log
    assert_clean(log)
    assert not (tmp_path / "daemon" / "run" / "daemon.json").exists()


def test_without_pystray_it_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['pystray'] = None\n"
        "from impasto.cli.main import main; sys.exit(main(['tray']))"
    )
    env = dict(os.environ, DISPLAY=":0")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 1
    assert "install `impasto[tray]`" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_config_file_started_from_a_menu_shows_a_red_icon_saying_why(
    desktop: Desktop, tray_on: Callable[..., Tray], tmp_path: Path
) -> None:
    """Started from the applications menu or at login, nobody reads stderr: the mistake in
    config.toml is the icon's tooltip and status line, until Quit (exit 1), with no daemon."""
    desktop.trayer()
    daemon = Daemon(tmp_path / "daemon")  # its folders and port, never started
    config = daemon.root / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("port = \n")
    tray = tray_on(daemon, PYSTRAY_BACKEND="xorg")
    tray.icon(DaemonState.ERROR, timeout=60)
    names = subprocess.run(
        ["xdotool", "search", "--name", "^Impasto: Error: settings: .*not valid TOML"],
        env=desktop.env,
        capture_output=True,
        text=True,
    )
    assert names.stdout.strip(), f"no icon window says why:\n{tray.log()}"
    tray.process.send_signal(signal.SIGTERM)
    assert tray.wait_exit(30) == 1
    log = tray.log()
    assert f"impasto tray: {config}: not valid TOML" in log
    assert "starting the daemon" not in log
    assert_clean(log)
