"""The pystray glue: the icon and its menu, fed by TrayController's snapshots."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from impasto.instance_lock import InstanceLock
from impasto.paths import resolve_paths
from impasto.settings_load import load_settings
from impasto_tray import backends, icons, platforms, pystray_fixes
from impasto_tray.controller import TrayController
from impasto_tray.daemon import DaemonProcess, impasto_command
from impasto_tray.state import DaemonState, Snapshot

log = logging.getLogger(__name__)


def build_controller() -> TrayController:
    """The controller for this user's settings (IMPASTO_* variables and config.toml)."""
    paths = resolve_paths(load_settings().settings)
    return TrayController(
        runtime_dir=paths.runtime_dir,
        output_dir=paths.output_dir,
        daemon=DaemonProcess(log_file=paths.log_dir / "tray-daemon.out"),
        platform=platforms.current(),
        autostart_command=impasto_command("tray"),
    )


def in_background(action: Callable[[], object]) -> Callable[[], None]:
    """Run a menu action off the GUI thread: stopping a daemon may take seconds."""

    def start() -> None:
        threading.Thread(target=action, name="impasto-tray-action", daemon=True).start()

    return start


def build_menu(pystray: ModuleType, controller: TrayController, quit: Callable[[], None]) -> Any:
    """The menu; its labels and ticks are read from the controller each time it opens."""
    item, menu = pystray.MenuItem, pystray.Menu
    running = lambda _item: controller.snapshot.running  # noqa: E731
    return menu(
        item(lambda _item: controller.snapshot.status_line, None, enabled=False),
        menu.SEPARATOR,
        item("Open Impasto", in_background(controller.open_ui), default=True, enabled=running),
        item("Open outputs folder", in_background(controller.open_outputs)),
        item(
            lambda _item: "Stop daemon" if controller.can_stop else "Start daemon",
            in_background(controller.toggle_daemon),
            enabled=lambda _item: controller.can_stop or not controller.snapshot.running,
        ),
        item(
            lambda _item: "Resume queue" if controller.snapshot.paused else "Pause queue",
            in_background(controller.toggle_pause),
            enabled=running,
        ),
        item(
            "Start at login",
            in_background(controller.toggle_autostart),
            checked=lambda _item: controller.autostart,
        ),
        menu.SEPARATOR,
        item("Quit", in_background(quit)),
    )


class IconView:
    """Shows each snapshot on the pystray icon: picture, tooltip, menu labels."""

    def __init__(self, icon: Any) -> None:
        self.icon = icon

    def show(self, snapshot: Snapshot) -> None:
        """Redraw the icon for ``snapshot``."""
        self.icon.title = snapshot.tooltip
        self.icon.icon = icons.render(snapshot)
        self.icon.update_menu()


# Seconds Quit waits for pystray's loop to end before ending the process itself.
QUIT_GRACE = 5.0
# Seconds to wait for a system tray before giving up (at login the panel may start later).
HOST_WAIT = 15.0


def host_wait() -> float:
    """``IMPASTO_TRAY_HOST_WAIT`` seconds, else HOST_WAIT."""
    try:
        return float(os.environ.get("IMPASTO_TRAY_HOST_WAIT", HOST_WAIT))
    except ValueError:
        log.warning("IMPASTO_TRAY_HOST_WAIT is not a number of seconds; using %.0f", HOST_WAIT)
        return HOST_WAIT


def create_icon(
    pystray: ModuleType,
    controller: TrayController,
    loop_ended: threading.Event | None = None,
    stuck: Callable[[], None] = lambda: os._exit(0),
) -> Any:
    """A pystray Icon wired to ``controller``; Quit stops the daemon it started, then the icon.

    pystray's X backend now and then misses the end of its own loop after ``stop()``
    (seen under Xvfb); Quit then calls ``stuck`` once the daemon is already stopped.
    """

    def quit() -> None:
        controller.quit()
        icon.stop()
        if loop_ended is not None and not loop_ended.wait(QUIT_GRACE):
            log.warning("the tray's event loop did not end; exiting")
            stuck()

    icon = pystray_fixes.icon_class(pystray)(
        "impasto",
        icon=icons.render(controller.snapshot),
        title=controller.snapshot.tooltip,
        menu=build_menu(pystray, controller, quit),
    )
    controller.observers.append(IconView(icon).show)
    icon.quit = quit  # what SIGINT and SIGTERM do too
    return icon


def import_pystray(backend: backends.Backend | None = None) -> ModuleType:
    """pystray on ``backend``, or a RuntimeError saying what to do."""
    if backend is not None and backend.name not in ("win32", "darwin"):
        os.environ["PYSTRAY_BACKEND"] = backend.name  # pystray reads it when imported
    try:
        import pystray
    except ModuleNotFoundError as exc:
        if exc.name != "pystray":
            raise RuntimeError(f"pystray cannot load its backend: {exc}") from exc
        raise RuntimeError(
            "the tray icon needs pystray: install `impasto[tray]` (pip install 'impasto[tray]')"
        ) from exc
    except Exception as exc:  # without a display Xlib raises its own errors, not ImportError
        raise RuntimeError(f"no desktop session to show the icon in ({exc})") from exc
    return pystray


def quiet_logging() -> None:
    """Log to stderr at INFO, without the HTTP client's line per poll."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def on_stop_signals(backend: backends.Backend, stop: Callable[[], None]) -> None:
    """Call ``stop`` (once, off the signal's thread) on SIGINT or SIGTERM.

    The GTK backends reset SIGINT to its default when their loop starts, and Python's own
    handlers would wait for the GLib loop to run Python code, so there GLib watches them.
    """
    stopping = threading.Event()

    def handle(*_args: object) -> bool:
        if not stopping.is_set():
            stopping.set()
            log.info("stopping (signal)")
            threading.Thread(target=stop, name="impasto-tray-quit", daemon=True).start()
        return False  # GLib: remove the source

    if backend.name in ("gtk", "appindicator"):
        from gi.repository import GLib

        for number in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_HIGH, number, handle)
    elif threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, handle)


class TrayLock(InstanceLock):
    """One tray per runtime folder, as one daemon: the OS drops the lock when the tray exits."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.path = folder / "tray.lock"

    def take(self) -> bool:
        """False only when another live tray holds the lock; a folder that cannot be made is
        the daemon's to report."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            return self.acquire()
        except OSError as exc:
            log.warning("no tray lock (%s): not checking for another tray", exc)
            return True


def find_tray() -> tuple[backends.Backend, ModuleType] | int:
    """The backend and pystray on it once a tray host is there, or the exit code."""
    try:
        backend = backends.choose()
        pystray = import_pystray(backend)
    except (backends.NoDesktop, RuntimeError) as exc:
        print(f"impasto tray: {exc}", file=sys.stderr)
        return 1
    if backend.note:
        log.warning("no tray menu (%s backend): %s", backend.name, backend.note)
    if not backends.host_present(backend):
        wait = host_wait()
        log.info("waiting up to %.0f s for a system tray", wait)
        try:
            found = backends.wait_for_host(backend, wait)
        except KeyboardInterrupt:  # Ctrl+C before there is anything to stop
            return 130
        if not found:
            print(f"impasto tray: {backends.NO_HOST}", file=sys.stderr)
            return 1
    return backend, pystray


def nobody_reads_stderr() -> bool:
    """Started from the applications menu or at login (no terminal), on a desktop."""
    if sys.stderr is not None and sys.stderr.isatty():
        return False
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def show_problem(problem: str) -> int:
    """Show why the tray cannot run as a red icon (tooltip and menu) until Quit; returns 1.

    Started from the applications menu or at login, nobody reads the tray's stderr: without
    this, a config.toml with a mistake looked like a tray that never came up.
    """
    found = find_tray()
    if isinstance(found, int):
        return found
    backend, pystray = found
    snapshot = Snapshot(DaemonState.ERROR, message=problem)
    loop_ended = threading.Event()

    def quit() -> None:
        icon.stop()
        if not loop_ended.wait(QUIT_GRACE):  # pystray's xorg loop may miss its end
            os._exit(1)

    menu = pystray.Menu(
        pystray.MenuItem(snapshot.status_line, None, enabled=False),
        pystray.Menu.SEPARATOR,
        pystray.MenuItem("Quit", in_background(quit)),
    )
    icon = pystray_fixes.icon_class(pystray)(
        "impasto", icon=icons.render(snapshot), title=snapshot.tooltip, menu=menu
    )
    if backend.name not in ("gtk", "appindicator"):
        on_stop_signals(backend, quit)

    def setup(icon: Any) -> None:
        if backend.name in ("gtk", "appindicator"):
            on_stop_signals(backend, quit)
        icon.visible = True

    try:
        icon.run(setup=setup)
    finally:
        loop_ended.set()
    return 1


def run(*, start_daemon: bool = True, interval: float = 0.5) -> int:
    """Run the tray until Quit, SIGINT or SIGTERM; returns the exit code."""
    quiet_logging()
    try:  # the settings first: a bad one is reported before any wait for a display
        controller = build_controller()
    except ValueError as exc:  # config.toml is not TOML, or an IMPASTO_* value is bad
        print(f"impasto tray: {exc}", file=sys.stderr)
        if not nobody_reads_stderr():
            return 1
        return show_problem(f"settings: {exc}")
    lock = TrayLock(controller.runtime_dir)
    if not lock.take():
        # At login and from the menu, or clicked twice: one icon, not two.
        print(f"impasto tray: already running (pid {lock.holder()})", file=sys.stderr)
        return 0
    found = find_tray()
    if isinstance(found, int):
        return found
    backend, pystray = found
    loop_ended = threading.Event()
    icon = create_icon(pystray, controller, loop_ended)
    if backend.name not in ("gtk", "appindicator"):
        on_stop_signals(backend, icon.quit)

    def setup(icon: Any) -> None:
        if backend.name in ("gtk", "appindicator"):
            on_stop_signals(backend, icon.quit)  # after pystray reset SIGINT
        icon.visible = True
        log.info("tray icon shown (%s backend)", backend.name)
        controller.startup(start_daemon=start_daemon)
        controller.watch(interval)

    try:
        icon.run(setup=setup)
    finally:
        loop_ended.set()
        controller.quit()
    return 0
